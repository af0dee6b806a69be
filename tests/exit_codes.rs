//! One exit-status table for every command: it ends every command's `--help`; a command-line
//! error exits 2 with one `error:` line and a `--help` hint; each command's own check of its flags,
//! files or configuration (a "semantic" usage error) exits 2 with one `error:` line, before any
//! HSM or AWS work (no module is configured, and AWS points at a closed port).

mod common;

use std::process::Output;

use assert_cmd::Command;
use common::stdout_of;

/// The binary with no module, token, PIN, configuration file or AWS endpoint that answers.
fn bin() -> Command {
    let mut c = Command::cargo_bin("hsm-demo").expect("hsm-demo binary");
    for k in [
        "HSM_DEMO_MODULE",
        "HSM_DEMO_TOKEN",
        "HSM_DEMO_PIN",
        "HSM_DEMO_CONFIG",
        "HSM_DEMO_CA_ARN",
        "RUST_LOG",
        "AWS_PROFILE",
    ] {
        c.env_remove(k);
    }
    c.env("XDG_CONFIG_HOME", "/nonexistent")
        .env("HSM_DEMO_MODULE", "/nonexistent/no-module.so")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXIT")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// Every command path, read from the binary's own help (so a new command is covered).
fn command_paths() -> Vec<Vec<String>> {
    fn subcommands(path: &[String]) -> Vec<String> {
        let a = bin().args(path).arg("--help").assert().success();
        let help = stdout_of(&a);
        let Some(start) = help.find("\nCommands:\n") else {
            return Vec::new();
        };
        help[start + 1..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter(|l| !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| *n != "help")
            .map(str::to_string)
            .collect()
    }
    let mut out = vec![Vec::new()];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        for sub in subcommands(&path) {
            let mut p = path.clone();
            p.push(sub);
            out.push(p);
        }
        i += 1;
    }
    out
}

fn assert_usage(out: &Output, what: &str, max_lines: usize) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        !lines.is_empty() && lines.len() <= max_lines,
        "{what}: {err}"
    );
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    if let Some(hint) = lines.get(1) {
        assert!(
            hint.starts_with("For more information, try '"),
            "{what}: {err}"
        );
    }
}

#[test]
fn every_help_ends_with_the_one_exit_status_table() {
    let paths = command_paths();
    assert!(paths.len() >= 25, "{paths:?}");
    for p in &paths {
        let a = bin().args(p).arg("--help").assert().success();
        let help = stdout_of(&a);
        let at = help
            .find("Exit status (every command):")
            .unwrap_or_else(|| panic!("{p:?}: no exit status table"));
        let table = &help[at..];
        for code in ["  0 ", "  1 ", "  2 ", "  3 ", "  130 "] {
            assert!(table.contains(code), "{p:?}: no {code:?} line");
        }
        assert_eq!(help.matches("Exit status").count(), 1, "{p:?}: two tables");
    }
}

#[test]
fn a_command_line_error_exits_2_with_one_error_line_and_a_hint_for_every_command() {
    for p in command_paths() {
        let out = bin().args(&p).arg("--no-such-flag").output().unwrap();
        assert_usage(&out, &format!("{p:?} --no-such-flag"), 2);
    }
}

/// One invocation per command whose own checks (not clap's) must refuse it; `f` is an existing
/// file that is not what the command expects, `bad_config` a configuration with an unknown key.
fn own_check_cases<'a>(f: &'a str, bad_config: &'a str) -> Vec<Vec<&'a str>> {
    let arn = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/11111111-2222-3333-4444-555555555555";
    vec![
        vec!["generate-key", "--label", "k", "--curve", "p521"],
        vec!["sign", "--id", "zz", "--data", "x"],
        vec!["verify", "--label", "k", "--data", "x", "--sig", "zz"],
        vec!["export-pubkey", "--uri", "pkcs11:colour=red"],
        vec!["key-ceremony", "--validity", "30m", "--out-dir", "cer"],
        vec![
            "key-ceremony",
            "sign-intermediate",
            "--csr",
            f,
            "--out",
            "i.pem",
            "--validity",
            "30m",
        ],
        vec![
            "key-ceremony",
            "verify-transcript",
            "--transcript",
            f,
            "--expect-head",
            "zz",
        ],
        vec![
            "key-ceremony",
            "crl",
            "--out",
            "r.crl",
            "--next-update",
            "30m",
        ],
        vec!["pca", "csr", "--label", ""],
        vec![
            "pca",
            "issue",
            "--ca-arn",
            "bogus",
            "--device-id",
            "d",
            "--label",
            "k",
        ],
        vec![
            "pca",
            "revoke",
            "--ca-arn",
            arn,
            "--serial",
            "zz",
            "--reason",
            "superseded",
        ],
        vec!["pca", "show", "--device-id", "..bad"],
        vec!["pca", "crl", "--ca-arn", "bogus"],
        vec!["pca", "decommission", "--device-id", "..bad"],
        vec!["pca", "expiring", "--within", "30m"],
        vec!["provision", "--ca-arn", "bogus", "--device-id", "d"],
        vec![
            "provision",
            "--ca-arn",
            arn,
            "--device-id",
            "d",
            "--validity",
            "30m",
        ],
        vec![
            "renew",
            "--ca-arn",
            arn,
            "--device-id",
            "d",
            "--within",
            "30m",
        ],
        vec!["doctor", "--ca-arn", "bogus"],
        vec!["man", "--out-dir", f],
        vec!["--config", bad_config, "config", "show"],
        vec!["pca", "audit-reconcile", "--ca-arn", arn, "--bucket", " "],
    ]
}

#[test]
fn each_commands_own_checks_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "tabel = \"x\"\n").unwrap();
    let cases = own_check_cases(file.to_str().unwrap(), bad_config.to_str().unwrap());
    let mut wrong = Vec::new();
    for args in cases {
        let out = bin()
            .current_dir(dir.path())
            .args(&args)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let r = std::panic::catch_unwind(|| assert_usage(&out, &format!("{args:?}"), 2));
        if r.is_err() {
            wrong.push(format!(
                "{args:?}: {:?} {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "not usage errors:\n{}", wrong.join("\n"));
}
