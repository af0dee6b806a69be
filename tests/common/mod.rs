//! Shared test fixtures: a real PKCS#11 token in a temp dir, and the hsm-demo binary pointed at it.
//!
//! Module kinds are chosen by `HSM_DEMO_TEST_MODULES` (comma-separated, default `softhsm`); tests
//! iterate over [`ModuleKind::enabled`]: `softhsm` (SoftHSM2, `SOFTHSM2_CONF`) and `kryoptic`
//! (`KRYOPTIC_CONF` with sqlite tokens, initialised with `pkcs11-tool --init-token --init-pin`).
#![allow(dead_code)]

/// The local AWS stand-in: `standin::endpoint()`, switches, CA hierarchy helpers.
pub mod standin;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use tempfile::TempDir;

/// Default user PIN of test tokens.
pub const PIN: &str = "123456";
/// Default SO PIN of test tokens.
pub const SO_PIN: &str = "12345678";

/// A PKCS#11 implementation the tests can run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// SoftHSM2 (Debian package softhsm2), configured by `SOFTHSM2_CONF`.
    SoftHsm,
    /// kryoptic 1.5.4 (built by `make kryoptic`), configured by `KRYOPTIC_CONF`; library path from
    /// `HSM_DEMO_KRYOPTIC_LIB` or `tools/kryoptic/target/release/libkryoptic_pkcs11.so`.
    Kryoptic,
}

/// Slot ids configured in a kryoptic test token's `KRYOPTIC_CONF` (one sqlite file each); unlike
/// SoftHSM2, kryoptic has no spare slot, so several are configured for multi-token tests. Odd
/// numbers on purpose: nothing may rely on slot 0.
pub const KRYOPTIC_SLOTS: [u64; 4] = [11, 12, 13, 14];

impl ModuleKind {
    /// The kinds enabled by `HSM_DEMO_TEST_MODULES` (default: softhsm). Unknown names panic so a
    /// typo cannot silently skip a module.
    pub fn enabled() -> Vec<ModuleKind> {
        let v = std::env::var("HSM_DEMO_TEST_MODULES").unwrap_or_else(|_| "softhsm".into());
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "softhsm" | "softhsm2" => ModuleKind::SoftHsm,
                "kryoptic" => ModuleKind::Kryoptic,
                other => panic!("HSM_DEMO_TEST_MODULES: unknown module kind '{other}'"),
            })
            .collect()
    }

    /// Short name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::SoftHsm => "softhsm",
            ModuleKind::Kryoptic => "kryoptic",
        }
    }

    /// Path of the module's shared library.
    pub fn module_path(self) -> PathBuf {
        match self {
            ModuleKind::SoftHsm => {
                let candidates = [
                    "/usr/lib/softhsm/libsofthsm2.so",
                    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
                ];
                candidates
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
                    .expect("libsofthsm2.so not found: run `make deps-apt`")
            }
            ModuleKind::Kryoptic => {
                let p = kryoptic_lib();
                assert!(
                    p.exists(),
                    "{} not found: run `make kryoptic` (or set HSM_DEMO_KRYOPTIC_LIB)",
                    p.display()
                );
                p
            }
        }
    }

    /// Whether the module's library is present on this machine.
    pub fn available(self) -> bool {
        match self {
            ModuleKind::SoftHsm => Path::new("/usr/lib/softhsm/libsofthsm2.so").exists(),
            ModuleKind::Kryoptic => kryoptic_lib().exists(),
        }
    }
}

/// Where the kryoptic library is: `HSM_DEMO_KRYOPTIC_LIB`, else the `make kryoptic` output.
pub fn kryoptic_lib() -> PathBuf {
    match std::env::var_os("HSM_DEMO_KRYOPTIC_LIB") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/kryoptic/target/release/libkryoptic_pkcs11.so"),
    }
}

/// A `KRYOPTIC_CONF` body with one sqlite token per slot id, stored under `db_dir`.
pub fn kryoptic_conf(db_dir: &Path, slots: &[u64]) -> String {
    slots
        .iter()
        .map(|s| {
            format!(
                "[[slots]]\nslot = {s}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                db_dir.join(format!("token{s}.sql")).display()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A token in its own temp directory. Dropping it removes everything.
pub struct TestToken {
    /// The module kind.
    pub kind: ModuleKind,
    /// Temp dir holding the config and token store (also a scratch dir for tests).
    pub dir: TempDir,
    /// Token label.
    pub label: String,
    /// User PIN.
    pub pin: String,
    /// SO PIN.
    pub so_pin: String,
    /// The module's config file (softhsm2.conf).
    pub conf: PathBuf,
}

impl TestToken {
    /// A fresh initialised token labelled `label` on the first enabled module kind.
    pub fn new(label: &str) -> TestToken {
        let kind = *ModuleKind::enabled()
            .first()
            .expect("HSM_DEMO_TEST_MODULES is empty");
        Self::with_kind(kind, label)
    }

    /// A fresh initialised token on `kind`.
    pub fn with_kind(kind: ModuleKind, label: &str) -> TestToken {
        let t = Self::empty(kind);
        t.init_token(label, PIN, SO_PIN);
        TestToken {
            label: label.to_string(),
            ..t
        }
    }

    /// A configured module with no initialised token at all.
    pub fn empty(kind: ModuleKind) -> TestToken {
        let dir = tempfile::Builder::new()
            .prefix("hsm-demo-test-")
            .tempdir()
            .expect("tempdir");
        let conf = match kind {
            ModuleKind::SoftHsm => {
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).unwrap();
                let conf = dir.path().join("softhsm2.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                        tokens.display()
                    ),
                )
                .unwrap();
                conf
            }
            ModuleKind::Kryoptic => {
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).unwrap();
                let conf = dir.path().join("kryoptic.conf");
                std::fs::write(&conf, kryoptic_conf(&tokens, &KRYOPTIC_SLOTS)).unwrap();
                conf
            }
        };
        TestToken {
            kind,
            dir,
            label: String::new(),
            pin: PIN.to_string(),
            so_pin: SO_PIN.to_string(),
            conf,
        }
    }

    /// Initialises one more token in this module's store (for multi-token tests).
    pub fn init_token(&self, label: &str, pin: &str, so_pin: &str) {
        match self.kind {
            ModuleKind::SoftHsm => {
                let out = StdCommand::new("softhsm2-util")
                    .env("SOFTHSM2_CONF", &self.conf)
                    .args(["--init-token", "--free", "--label", label])
                    .args(["--so-pin", so_pin, "--pin", pin])
                    .output()
                    .expect("softhsm2-util not found: run `make deps-apt`");
                assert!(
                    out.status.success(),
                    "softhsm2-util --init-token failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            ModuleKind::Kryoptic => {
                let slot = self.free_slot();
                let out = self
                    .tool("pkcs11-tool")
                    .arg("--module")
                    .arg(self.kind.module_path())
                    .args(["--slot", &slot.to_string(), "--init-token", "--init-pin"])
                    .args(["--label", label, "--so-pin", so_pin, "--pin", pin])
                    .output()
                    .expect("pkcs11-tool not found: run `make deps-apt`");
                assert!(
                    out.status.success(),
                    "pkcs11-tool --init-token on kryoptic slot {slot} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// The id of the first slot whose token is not initialised yet (kryoptic: per `pkcs11-tool -L`;
    /// SoftHSM2 always has one spare slot, found by softhsm2-util's `--free`).
    pub fn free_slot(&self) -> u64 {
        let out = self
            .tool("pkcs11-tool")
            .arg("--module")
            .arg(self.kind.module_path())
            .arg("--list-slots")
            .output()
            .expect("pkcs11-tool not found: run `make deps-apt`");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut current: Option<u64> = None;
        for line in text.lines() {
            // "Slot 0 (0xb): Kryoptic Slot" then "  token state:   uninitialized"
            if let Some(rest) = line.strip_prefix("Slot ") {
                current = rest
                    .split_once("(0x")
                    .and_then(|(_, r)| r.split_once(')'))
                    .and_then(|(hex, _)| u64::from_str_radix(hex, 16).ok());
            } else if line.contains("uninitialized") {
                if let Some(id) = current {
                    return id;
                }
            }
        }
        panic!("no free slot left on {}: {text}", self.kind.name());
    }

    /// Initialises a token with an SO PIN but no user PIN (`pkcs11-tool --init-token` only).
    pub fn init_token_without_user_pin(&self, label: &str) {
        let out = self
            .tool("pkcs11-tool")
            .args(["--module"])
            .arg(self.kind.module_path())
            .args(self.free_slot_args())
            .args(["--init-token", "--label", label, "--so-pin", &self.so_pin])
            .output()
            .expect("pkcs11-tool");
        assert!(
            out.status.success(),
            "pkcs11-tool --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Environment variables that point a PKCS#11 consumer at this token's module config.
    pub fn module_env(&self) -> Vec<(&'static str, PathBuf)> {
        match self.kind {
            ModuleKind::SoftHsm => vec![("SOFTHSM2_CONF", self.conf.clone())],
            ModuleKind::Kryoptic => vec![("KRYOPTIC_CONF", self.conf.clone())],
        }
    }

    /// `--slot <id>` of a free slot for pkcs11-tool on kryoptic (which has no spare slot and
    /// would otherwise pick an initialised token); nothing on SoftHSM2.
    pub fn free_slot_args(&self) -> Vec<String> {
        match self.kind {
            ModuleKind::SoftHsm => vec![],
            ModuleKind::Kryoptic => vec!["--slot".into(), self.free_slot().to_string()],
        }
    }

    /// The hsm-demo binary with the module config, `HSM_DEMO_MODULE`, `HSM_DEMO_PIN` and
    /// `HSM_DEMO_TOKEN` set, working directory = the temp dir.
    pub fn cmd(&self) -> Command {
        let mut c = self.cmd_bare();
        c.env("HSM_DEMO_PIN", &self.pin);
        if !self.label.is_empty() {
            c.env("HSM_DEMO_TOKEN", &self.label);
        }
        c
    }

    /// Like [`cmd`](Self::cmd) without `HSM_DEMO_TOKEN` (the single initialised token is used).
    pub fn cmd_no_token(&self) -> Command {
        let mut c = self.cmd_bare();
        c.env("HSM_DEMO_PIN", &self.pin);
        c
    }

    /// The binary with only the module config and `HSM_DEMO_MODULE`: no PIN, no token.
    pub fn cmd_bare(&self) -> Command {
        let mut c = Command::cargo_bin("hsm-demo").expect("hsm-demo binary");
        for k in [
            "HSM_DEMO_PIN",
            "HSM_DEMO_TOKEN",
            "HSM_DEMO_MODULE",
            "SOFTHSM2_CONF",
            "KRYOPTIC_CONF",
            "RUST_LOG",
        ] {
            c.env_remove(k);
        }
        for (k, v) in self.module_env() {
            c.env(k, v);
        }
        c.env("HSM_DEMO_MODULE", self.kind.module_path());
        c.current_dir(self.dir.path());
        c
    }

    /// Any other program (openssl, pkcs11-tool) with this token's module env, cwd = temp dir.
    pub fn tool(&self, program: &str) -> StdCommand {
        let mut c = StdCommand::new(program);
        for (k, v) in self.module_env() {
            c.env(k, v);
        }
        c.current_dir(self.dir.path());
        c
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Names of the files in the temp dir (excluding the module's own store and config).
    pub fn scratch_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "tokens" && n != "softhsm2.conf" && n != "kryoptic.conf")
            .collect();
        v.sort();
        v
    }

    /// Runs `generate-key --label label` and asserts success.
    pub fn generate_key(&self, label: &str) {
        self.cmd()
            .args(["generate-key", "--label", label])
            .assert()
            .success();
    }
}

/// stdout of a successful assert as a String.
pub fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

/// stderr of an assert as a String.
pub fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The one line a refused command printed: asserts that stderr is exactly one line, starting
/// `error: ` and containing `want` (`""`: any), and returns it. Exit status and stdout are the
/// caller's to check.
pub fn one_line_error(a: &assert_cmd::assert::Assert, want: &str) -> String {
    let err = stderr_of(a);
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line expected, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(want), "'{want}' expected in: {err:?}");
    lines[0].to_string()
}
