//! `hsm-demo man --out-dir DIR`: one roff manual page per command (`hsm-demo.1`,
//! `hsm-demo-pca-issue.1`, …), generated from the clap definition with clap_mangen.

use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::{check_out_dir, create_out_dir, write_atomic};

const AFTER_HELP: &str = "\
Examples:
  hsm-demo man --out-dir man/man1 && man -l man/man1/hsm-demo-provision.1
  sudo hsm-demo man --out-dir /usr/local/share/man/man1 && sudo mandb

Every page is rewritten on each run; the directory is created (with its parents) when missing.";

/// Arguments of `hsm-demo man`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Directory for the pages (created when missing)
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Writes one page per command and prints each path.
pub fn run(a: Args, g: &Global) -> Result<()> {
    check_out_dir(&a.out_dir, "--out-dir")?;
    let mut pages = Vec::new();
    collect(crate::cli::command(), &["hsm-demo"], &mut pages);
    let mut rendered = Vec::with_capacity(pages.len());
    for (name, cmd) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut buf)
            .map_err(|e| Error::io(format!("cannot render the page {name}.1"), e))?;
        rendered.push((a.out_dir.join(format!("{name}.1")), buf));
    }
    create_out_dir(&a.out_dir)?;
    for (path, buf) in &rendered {
        write_atomic(path, buf, true)?;
    }
    report(&rendered, &a.out_dir, g.json);
    Ok(())
}

/// The command and every subcommand below it, each page named by its full path
/// (`hsm-demo-pca-issue`) so that the pages do not collide, its synopsis by the command line
/// (`hsm-demo pca issue`).
fn collect(cmd: clap::Command, path: &[&str], pages: &mut Vec<(String, clap::Command)>) {
    let name = path.join("-");
    let cmd = cmd.name(name.clone()).bin_name(path.join(" "));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut sub_path = path.to_vec();
        sub_path.push(sub.get_name());
        collect(sub.clone(), &sub_path, pages);
    }
    pages.push((name, cmd));
}

fn report(pages: &[(PathBuf, Vec<u8>)], dir: &Path, json: bool) {
    if json {
        let paths: Vec<String> = pages.iter().map(|(p, _)| p.display().to_string()).collect();
        println!(
            "{}",
            serde_json::json!({ "out_dir": dir.display().to_string(), "pages": paths })
        );
    } else {
        for (p, _) in pages {
            println!("{}", p.display());
        }
    }
}
