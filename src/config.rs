//! The configuration file: defaults for the options every invocation would otherwise repeat.
//!
//! Found at `--config FILE`, else `HSM_DEMO_CONFIG`, else `$XDG_CONFIG_HOME/hsm-demo/config.toml`
//! (`~/.config/hsm-demo/config.toml`) when that exists. TOML, one key per option:
//!
//! ```toml
//! module       = "/usr/lib/softhsm/libsofthsm2.so"
//! token        = "factory-line-1"
//! ca_arn       = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/…"
//! table        = "hsm-demo-registry"
//! region       = "eu-west-1"
//! profile      = "pki-operator"
//! endpoint_url = "http://127.0.0.1:4566"
//! issue_tps    = 20
//! get_tps      = 60
//! validity     = "90d"
//! template     = "client"
//! ```
//!
//! Precedence: flag > environment > file > built-in default. A file value becomes the default of
//! the matching flag (so clap's own flag and environment handling keep precedence); `region`,
//! `profile` and `endpoint_url` have no flag and are handed to the AWS SDK as `AWS_REGION`,
//! `AWS_PROFILE` and `AWS_ENDPOINT_URL` unless those are set. Every problem of a file is reported
//! at once, in one line; unknown keys are errors, and so is a PIN (it belongs in `--pin-file`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A key of the file: its name, the environment variable that overrides it, its built-in default.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The TOML key (also the clap argument id it sets the default of).
    pub name: &'static str,
    /// The environment variable that takes precedence over the file.
    pub env: &'static str,
    /// The built-in default, if any.
    pub default: Option<&'static str>,
}

/// Every key the file may hold.
pub const KEYS: [Key; 11] = [
    key("module", "HSM_DEMO_MODULE", None),
    key("token", "HSM_DEMO_TOKEN", None),
    key("ca_arn", "HSM_DEMO_CA_ARN", None),
    key(
        "table",
        "HSM_DEMO_TABLE",
        Some(crate::pca::registry::DEFAULT_TABLE),
    ),
    key("region", "AWS_REGION", None),
    key("profile", "AWS_PROFILE", None),
    key("endpoint_url", "AWS_ENDPOINT_URL", None),
    key("issue_tps", "HSM_DEMO_ISSUE_TPS", Some("25")),
    key("get_tps", "HSM_DEMO_GET_TPS", Some("75")),
    key("validity", "HSM_DEMO_VALIDITY", Some("30d")),
    key("template", "HSM_DEMO_TEMPLATE", Some("client")),
];

const fn key(name: &'static str, env: &'static str, default: Option<&'static str>) -> Key {
    Key { name, env, default }
}

/// Keys that only the AWS SDK reads (through the environment).
pub const SDK_KEYS: [&str; 3] = ["region", "profile", "endpoint_url"];

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Where the file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--config FILE`.
    Flag,
    /// `HSM_DEMO_CONFIG`.
    Env,
    /// `$XDG_CONFIG_HOME/hsm-demo/config.toml`.
    Xdg,
}

/// A loaded, validated file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// Its path.
    pub path: PathBuf,
    /// How it was found.
    pub origin: Origin,
    /// Key → value (as text; numbers printed back).
    pub values: BTreeMap<&'static str, String>,
    /// The SDK keys handed over through the environment by [`export_sdk_keys`].
    pub exported: Vec<&'static str>,
}

/// The file to read, if any: `--config`, else `HSM_DEMO_CONFIG`, else the XDG path when it
/// exists. An explicit path that does not exist is an error later, when it is read.
pub fn locate(explicit: Option<&Path>) -> Option<(PathBuf, Origin)> {
    if let Some(p) = explicit {
        return Some((p.to_path_buf(), Origin::Flag));
    }
    if let Some(p) = std::env::var_os("HSM_DEMO_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), Origin::Env));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let p = base.join("hsm-demo").join("config.toml");
    p.is_file().then_some((p, Origin::Xdg))
}

/// Reads and validates the file at `path`: every problem in one error.
pub fn load(path: &Path, origin: Origin) -> Result<ConfigFile> {
    let text = crate::fsutil::read_text_bounded(path, "config file", MAX_CONFIG_BYTES)?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Error::Usage(format!(
            "config {}: not valid TOML: {}",
            path.display(),
            e.message().replace('\n', " ")
        ))
    })?;
    let mut problems = Vec::new();
    let mut values = BTreeMap::new();
    for (k, v) in &table {
        match KEYS.iter().find(|key| key.name == k) {
            Some(key) => match check_value(key.name, v) {
                Ok(text) => {
                    values.insert(key.name, text);
                }
                Err(p) => problems.push(p),
            },
            None => problems.push(unknown_key(k)),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Usage(format!(
            "config {}: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        origin,
        values,
        exported: Vec::new(),
    })
}

fn unknown_key(k: &str) -> String {
    let k = k.escape_debug().to_string();
    if k.to_ascii_lowercase().contains("pin") {
        return format!("'{k}': a PIN is never read from the config file: use --pin-file FILE (mode 0600) or HSM_DEMO_PIN");
    }
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    format!("unknown key '{k}' (known: {})", names.join(", "))
}

/// Checks one value's type and content; returns it as text.
fn check_value(name: &str, v: &toml::Value) -> std::result::Result<String, String> {
    let text = match (name, v) {
        ("issue_tps" | "get_tps", toml::Value::Integer(n)) => n.to_string(),
        ("issue_tps" | "get_tps", toml::Value::Float(f)) => f.to_string(),
        (_, toml::Value::String(s)) => s.clone(),
        _ => {
            return Err(format!(
                "'{name}' must be a {}",
                if name.ends_with("_tps") {
                    "number"
                } else {
                    "string"
                }
            ))
        }
    };
    let bad = |why: String| Err(format!("'{name}' = {text:?}: {why}"));
    match name {
        "issue_tps" | "get_tps" => match text.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(text),
            _ => bad("must be a positive number".into()),
        },
        "validity" => crate::pca::validity::ValiditySpec::parse(&text)
            .map(|_| text.clone())
            .or_else(|e| bad(e.one_line())),
        "template" => match text.as_str() {
            "client" | "server" | "plain" => Ok(text),
            _ => bad("must be client, server or plain".into()),
        },
        "ca_arn" => crate::pca::ids::CaArn::parse(&text)
            .map(|_| text.clone())
            .or_else(|e| bad(e.one_line())),
        "endpoint_url" => crate::pca::aws::check_endpoint_url("endpoint_url", &text)
            .map(|()| text.clone())
            .or_else(|e| bad(e.one_line())),
        _ if text.is_empty() || text.contains(['\n', '\r', '\0']) => {
            bad("must be one non-empty line".into())
        }
        _ => Ok(text),
    }
}

/// Hands `region`, `profile` and `endpoint_url` to the AWS SDK through its environment variables,
/// each only when the variable is not set (the environment takes precedence). Call it before any
/// thread starts.
pub fn export_sdk_keys(file: &mut ConfigFile) {
    for name in SDK_KEYS {
        let (Some(v), Some(k)) = (file.values.get(name), KEYS.iter().find(|k| k.name == name))
        else {
            continue;
        };
        if std::env::var_os(k.env).is_none_or(|e| e.is_empty()) {
            std::env::set_var(k.env, v);
            file.exported.push(name);
        }
    }
}

/// Makes the file's values the defaults of the matching arguments of `cmd` and its subcommands
/// (`validity` and `template` only where a command issues device certificates: it has both).
pub fn apply_defaults(cmd: clap::Command, file: &ConfigFile) -> clap::Command {
    let issues = cmd.get_arguments().any(|a| a.get_id() == "template")
        && cmd.get_arguments().any(|a| a.get_id() == "validity");
    let mut cmd = cmd;
    for (name, value) in &file.values {
        if SDK_KEYS.contains(name) || (!issues && matches!(*name, "validity" | "template")) {
            continue;
        }
        if cmd.get_arguments().any(|a| a.get_id() == *name) {
            let value = value.clone();
            cmd = cmd.mut_arg(*name, move |a| a.default_value(value).required(false));
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in subs {
        cmd = cmd.mut_subcommand(sub, |s| apply_defaults(s, file));
    }
    cmd
}

/// Where an effective value comes from, for `config show`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Effective {
    /// The key.
    pub key: &'static str,
    /// The value (`None`: unset).
    pub value: Option<String>,
    /// `flag`, `env NAME`, `file PATH`, `default` or `unset`.
    pub source: String,
}

/// Every key's effective value and its source; `flags` are the values given on the command line.
pub fn effective(file: Option<&ConfigFile>, flags: &BTreeMap<&str, String>) -> Vec<Effective> {
    KEYS.iter()
        .map(|k| {
            let exported = file.is_some_and(|f| f.exported.contains(&k.name));
            let env = std::env::var(k.env)
                .ok()
                .filter(|v| !v.is_empty() && !exported);
            let (value, source) = if let Some(v) = flags.get(k.name) {
                (Some(v.clone()), "flag".to_string())
            } else if let Some(v) = env {
                (Some(v), format!("env {}", k.env))
            } else if let Some((v, f)) = file.and_then(|f| f.values.get(k.name).map(|v| (v, f))) {
                (Some(v.clone()), format!("file {}", f.path.display()))
            } else if let Some(d) = k.default {
                (Some(d.to_string()), "default".to_string())
            } else {
                (None, "unset".to_string())
            };
            Effective {
                key: k.name,
                value,
                source,
            }
        })
        .collect()
}
