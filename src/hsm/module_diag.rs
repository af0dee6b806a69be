//! Why a PKCS#11 module failed `C_Initialize`: the modules themselves only return a bare CKR code
//! (kryoptic `CKR_TOKEN_NOT_PRESENT`, SoftHSM2 `CKR_GENERAL_ERROR`), so look at the configuration
//! they read and name the cause (missing config file, missing token directory).
//!
//! Only reads files; never changes anything. Returns `None` when it finds nothing wrong.

use std::path::{Path, PathBuf};

/// A one-line explanation of a failed `C_Initialize` of the module at `module`, if one is found.
pub fn diagnose_init_failure(module: &Path) -> Option<String> {
    let name = module
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("kryoptic") {
        kryoptic(std::env::var_os("KRYOPTIC_CONF").map(PathBuf::from))
    } else if name.contains("softhsm") {
        softhsm(std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from))
    } else {
        None
    }
}

/// kryoptic reads `KRYOPTIC_CONF` (TOML, `[[slots]]` with `dbtype`/`dbargs`).
fn kryoptic(conf: Option<PathBuf>) -> Option<String> {
    let Some(conf) = conf else {
        return Some(
            "kryoptic found no configuration: set KRYOPTIC_CONF to a TOML file with \
             [[slots]] slot = N, dbtype = \"sqlite\", dbargs = \"<dir>/token.sql\""
                .into(),
        );
    };
    let text = match std::fs::read_to_string(&conf) {
        Ok(t) => t,
        Err(e) => return Some(format!("cannot read KRYOPTIC_CONF={}: {e}", conf.display())),
    };
    let value: toml::Table = match toml::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.message().replace(['\n', '\r'], " ");
            return Some(format!(
                "KRYOPTIC_CONF={} is not valid TOML: {msg}",
                conf.display()
            ));
        }
    };
    let slots = value.get("slots").and_then(|s| s.as_array());
    let Some(slots) = slots.filter(|s| !s.is_empty()) else {
        return Some(format!(
            "KRYOPTIC_CONF={} defines no [[slots]]",
            conf.display()
        ));
    };
    for s in slots {
        let slot = s
            .get("slot")
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        let dbtype = s.get("dbtype").and_then(|v| v.as_str()).unwrap_or("");
        let Some(dbargs) = s.get("dbargs").and_then(|v| v.as_str()) else {
            continue;
        };
        // sqlite: dbargs is the database file; nssdb: "configDir=<dir> ..."
        let dir = if dbtype == "sqlite" {
            Path::new(dbargs).parent().map(Path::to_path_buf)
        } else {
            dbargs
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("configDir="))
                .map(|d| PathBuf::from(d.trim_matches('\'').trim_matches('"')))
        };
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Some(format!(
                    "kryoptic cannot open the token database of slot {slot}: directory {} does \
                     not exist (dbargs in KRYOPTIC_CONF={})",
                    dir.display(),
                    conf.display()
                ));
            }
        }
    }
    None
}

/// SoftHSM2 reads `SOFTHSM2_CONF` (else /etc/softhsm/softhsm2.conf): `directories.tokendir = <dir>`.
fn softhsm(conf: Option<PathBuf>) -> Option<String> {
    let (conf, var) = match conf {
        Some(c) => (c, "SOFTHSM2_CONF="),
        None => (PathBuf::from("/etc/softhsm/softhsm2.conf"), ""),
    };
    let text = match std::fs::read_to_string(&conf) {
        Ok(t) => t,
        Err(e) => {
            return Some(format!(
                "cannot read SoftHSM2 config {var}{}: {e}",
                conf.display()
            ))
        }
    };
    let tokendir = text.lines().find_map(|l| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        let (k, v) = l.split_once('=')?;
        (k.trim() == "directories.tokendir").then(|| PathBuf::from(v.trim()))
    });
    match tokendir {
        None => Some(format!(
            "SoftHSM2 config {var}{} has no directories.tokendir",
            conf.display()
        )),
        Some(d) if !d.is_dir() => Some(format!(
            "SoftHSM2 token directory {} does not exist (directories.tokendir in {var}{})",
            d.display(),
            conf.display()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kryoptic_missing_db_dir_is_named() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("k.conf");
        std::fs::write(
            &conf,
            "[[slots]]\nslot = 3\ndbtype = \"sqlite\"\ndbargs = \"/nonexistent-hsm-demo/t.sql\"\n",
        )
        .unwrap();
        let m = kryoptic(Some(conf.clone())).unwrap();
        assert!(
            m.contains("directory /nonexistent-hsm-demo does not exist"),
            "{m}"
        );
        assert!(
            m.contains("slot 3") && m.contains(&conf.display().to_string()),
            "{m}"
        );
    }

    #[test]
    fn kryoptic_good_config_has_no_diagnosis() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("k.conf");
        let db = d.path().join("t.sql");
        std::fs::write(
            &conf,
            format!(
                "[[slots]]\nslot = 1\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                db.display()
            ),
        )
        .unwrap();
        assert_eq!(kryoptic(Some(conf)), None);
    }

    #[test]
    fn kryoptic_unreadable_and_invalid_configs() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("none.conf");
        assert!(kryoptic(Some(missing))
            .unwrap()
            .contains("cannot read KRYOPTIC_CONF="));
        let bad = d.path().join("bad.conf");
        std::fs::write(&bad, "[[slots]\n").unwrap();
        assert!(kryoptic(Some(bad)).unwrap().contains("is not valid TOML"));
        assert!(kryoptic(None).unwrap().contains("set KRYOPTIC_CONF"));
    }

    #[test]
    fn softhsm_missing_tokendir_is_named() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("s.conf");
        std::fs::write(
            &conf,
            "directories.tokendir = /nonexistent-hsm-demo/tokens\n",
        )
        .unwrap();
        let m = softhsm(Some(conf)).unwrap();
        assert!(
            m.contains("token directory /nonexistent-hsm-demo/tokens does not exist"),
            "{m}"
        );
        std::fs::write(
            d.path().join("ok.conf"),
            format!("directories.tokendir = {}\n", d.path().display()),
        )
        .unwrap();
        assert_eq!(softhsm(Some(d.path().join("ok.conf"))), None);
    }
}
