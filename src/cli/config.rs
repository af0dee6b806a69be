//! `hsm-demo config show`: every configuration key's effective value and where it comes from.

use crate::cli::Global;
use crate::config::{self, Origin};
use crate::error::Result;

const AFTER_HELP: &str = "\
The file: `hsm-demo --config FILE <command>` (before the command: `key-ceremony --config` is the
ceremony's own file), else HSM_DEMO_CONFIG, else $XDG_CONFIG_HOME/hsm-demo/config.toml
(~/.config/hsm-demo/config.toml) when it exists. TOML with the keys module, token, ca_arn, table,
region, profile, endpoint_url, issue_tps, get_tps, validity, template. Precedence: flag >
environment > file > default. Unknown keys are errors, all reported at once; a PIN is refused
(use --pin-file).

Examples:
  hsm-demo config show
  hsm-demo --config factory.toml config show --json
  hsm-demo --config factory.toml provision --device-id d-1     # ca_arn, table, module… from the file";

/// Arguments of `hsm-demo config`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print every key's effective value and its source (flag, env, file, default, unset)
    Show,
}

/// Prints the effective configuration.
pub fn run(a: Args, g: &Global) -> Result<()> {
    let Action::Show = a.action;
    let rows = config::effective(g.config.as_ref(), &g.config_flags);
    let file = g.config.as_ref().map(|f| {
        let how = match f.origin {
            Origin::Flag => "--config",
            Origin::Env => "HSM_DEMO_CONFIG",
            Origin::Xdg => "XDG_CONFIG_HOME",
        };
        (f.path.display().to_string(), how)
    });
    if g.json {
        let file = file.map(|(p, how)| serde_json::json!({"path": p, "found_by": how}));
        println!("{}", serde_json::json!({ "file": file, "values": rows }));
        return Ok(());
    }
    match &file {
        Some((p, how)) => println!("config file: {p} (from {how})"),
        None => println!("config file: none"),
    }
    for r in rows {
        let v = r.value.as_deref().unwrap_or("-");
        println!("{:<13} {:<40} {}", r.key, v, r.source);
    }
    Ok(())
}
