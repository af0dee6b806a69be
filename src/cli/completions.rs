//! `hsm-demo completions SHELL`: the shell completion script for bash, zsh, fish or PowerShell,
//! generated from the same clap definition that parses the command line (so it never drifts).

use clap_complete::Shell;

use crate::cli::Global;
use crate::error::{Error, Result};

const AFTER_HELP: &str = "\
Examples:
  source <(hsm-demo completions bash)                          # this bash session
  hsm-demo completions bash > /etc/bash_completion.d/hsm-demo  # every bash session
  hsm-demo completions zsh > \"${fpath[1]}/_hsm-demo\"
  hsm-demo completions fish > ~/.config/fish/completions/hsm-demo.fish
  hsm-demo completions powershell >> $PROFILE";

/// Arguments of `hsm-demo completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,
}

/// The shells a completion script is generated for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// GNU bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
    /// PowerShell
    Powershell,
}

impl From<CompletionShell> for Shell {
    fn from(s: CompletionShell) -> Shell {
        match s {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
            CompletionShell::Powershell => Shell::PowerShell,
        }
    }
}

const BIN: &str = "hsm-demo";

/// clap_complete's bash generator names a subcommand's case label from the binary name with every
/// `-` turned into its subcommand separator (`hsm__subcmd__demo__subcmd__pca`) but sets the
/// variable it matches from the name with `-` turned into `__` (`hsm__demo__subcmd__pca`), so no
/// subcommand below the first level would complete. Renaming the labels makes both agree.
fn fix_bash_case_labels(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("hsm__subcmd__demo", "hsm__demo")
        .into_bytes()
}

/// Writes the script to stdout. Needs no module, token, PIN or AWS.
pub fn run(a: Args, _g: &Global) -> Result<()> {
    let mut cmd = crate::cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(Shell::from(a.shell), &mut cmd, BIN, &mut buf);
    if let CompletionShell::Bash = a.shell {
        buf = fix_bash_case_labels(&buf);
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(&buf)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))
}
