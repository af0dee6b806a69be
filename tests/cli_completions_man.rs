//! `hsm-demo completions` and `hsm-demo man`: the bash script, sourced by a real bash, completes
//! subcommands at every level and flags; the other shells' scripts register hsm-demo; every
//! command gets a manual page that starts with `.TH` and renders with groff without a warning; and
//! a missing `--out-dir` is created (with its parents) while a file in its way is refused.

mod common;

use std::process::Command as StdCommand;

use assert_cmd::Command;
use common::{stderr_of, stdout_of};

fn bin() -> Command {
    Command::cargo_bin("hsm-demo").expect("hsm-demo binary")
}

/// Sources the bash script and calls its completion function the way bash's `complete -F` does for
/// the command line `words` (the last word being completed); returns COMPREPLY.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let cur = words[cword];
    let prev = words[cword - 1];
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'; f=$(complete -p hsm-demo | sed 's/.*-F \\([^ ]*\\).*/\\1/'); \
         COMP_WORDS=({}); COMP_CWORD={cword}; \"$f\" hsm-demo '{cur}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" ")
    );
    let out = StdCommand::new("bash")
        .arg("-c")
        .arg(prog)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_sources_the_script_and_completes_subcommands_at_every_level_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let a = bin().args(["completions", "bash"]).assert().success();
    let script = dir.path().join("hsm-demo.bash");
    std::fs::write(&script, stdout_of(&a)).unwrap();

    assert_eq!(bash_complete(&script, &["hsm-demo", "pro"]), ["provision"]);
    let mut pca_re = bash_complete(&script, &["hsm-demo", "pca", "re"]);
    pca_re.sort();
    assert_eq!(pca_re, ["reconcile", "revoke"]);
    assert_eq!(
        bash_complete(&script, &["hsm-demo", "key-ceremony", "sign-"]),
        ["sign-intermediate"]
    );
    assert_eq!(
        bash_complete(&script, &["hsm-demo", "pca", "revoke", "--rea"]),
        ["--reason"]
    );
    assert_eq!(
        bash_complete(&script, &["hsm-demo", "completions", "fi"]),
        ["fish"]
    );
}

#[test]
fn zsh_fish_and_powershell_scripts_register_hsm_demo_and_its_commands() {
    for (shell, marker) in [
        ("zsh", "#compdef hsm-demo"),
        ("fish", "complete -c hsm-demo"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let a = bin().args(["completions", shell]).assert().success();
        let s = stdout_of(&a);
        assert!(s.contains(marker), "{shell}: no {marker:?}");
        for cmd in ["provision", "sign-intermediate", "reconcile"] {
            assert!(s.contains(cmd), "{shell}: {cmd} missing");
        }
    }
    let a = bin()
        .args(["completions", "tcsh"])
        .assert()
        .failure()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.starts_with("error: ") && err.contains("tcsh"), "{err}");
}

/// Every command path as `hsm-demo help` lists it, one level down for the commands with
/// subcommands: read from the binary, so a new command without a page fails the test.
fn command_pages() -> Vec<String> {
    fn subcommands(path: &[&str]) -> Vec<String> {
        let a = bin().args(path).arg("--help").assert().success();
        let help = stdout_of(&a);
        let Some(start) = help.find("\nCommands:\n") else {
            return Vec::new();
        };
        help[start + 1..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter(|l| !l.starts_with("   ")) // a wrapped description, not a command
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| *n != "help")
            .map(str::to_string)
            .collect()
    }
    let mut pages = vec!["hsm-demo".to_string()];
    for sub in subcommands(&[]) {
        pages.push(format!("hsm-demo-{sub}"));
        for subsub in subcommands(&[sub.as_str()]) {
            pages.push(format!("hsm-demo-{sub}-{subsub}"));
        }
    }
    pages
}

#[test]
fn man_writes_one_page_per_command_each_starting_with_th_and_rendering_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("share/man/man1");
    let a = bin()
        .args(["man", "--out-dir"])
        .arg(&out)
        .assert()
        .success();
    assert!(out.is_dir(), "--out-dir is created with its parents");
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = command_pages().iter().map(|p| format!("{p}.1")).collect();
    expected.sort();
    assert!(expected.contains(&"hsm-demo-pca-issue.1".to_string()));
    assert!(expected.contains(&"hsm-demo-key-ceremony-sign-intermediate.1".to_string()));
    assert_eq!(written, expected);
    assert_eq!(stdout_of(&a).lines().count(), expected.len());

    for page in &written {
        let path = out.join(page);
        let text = std::fs::read_to_string(&path).unwrap();
        let name = page.trim_end_matches(".1");
        let th = text.lines().find(|l| l.starts_with('.')).unwrap_or("");
        let th = if th.starts_with(".ie") {
            text.lines().find(|l| l.starts_with(".TH")).unwrap_or("")
        } else {
            th
        };
        assert!(th.starts_with(&format!(".TH {name} 1")), "{page}: {th}");
        let r = StdCommand::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-rLL=300n", "-P-cbou"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(r.status.success(), "{page}");
        assert!(
            r.stderr.is_empty(),
            "{page}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let rendered = String::from_utf8_lossy(&r.stdout);
        assert!(rendered.contains("NAME"), "{page}");
        assert!(rendered.contains("SYNOPSIS"), "{page}");
        assert!(
            rendered.contains(&format!("{name} - ")),
            "{page}: {rendered}"
        );
    }
}

#[test]
fn man_refuses_a_file_as_out_dir_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"keep").unwrap();
    for target in [file.clone(), file.join("man1")] {
        let a = bin()
            .args(["man", "--out-dir"])
            .arg(&target)
            .assert()
            .failure()
            .code(2);
        let err = stderr_of(&a);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not a directory"), "{err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
