//! Hostile input to the HSM-only commands: output paths that are not regular files, `--out -`,
//! oversized or endless inputs (`/dev/zero`, FIFOs), PIN files with a BOM or loose permissions,
//! labels with control characters. Each refusal is one `error:` line, exit 1, and nothing changed.
mod common;

use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::Path;

use common::{stderr_of, stdout_of, TestToken};

fn token() -> TestToken {
    let t = TestToken::new("hostile");
    t.cmd()
        .args(["generate-key", "--label", "k", "--id", "01"])
        .assert()
        .success();
    t
}

/// Asserts the one-line refusal contract and returns stderr.
fn refused(a: assert_cmd::assert::Assert, needle: &str) -> String {
    let out = a.get_output();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    err
}

fn mkfifo(p: &Path) {
    assert!(std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap()
        .success());
}

#[test]
fn outputs_that_are_not_regular_files_are_refused_with_force_too() {
    let t = token();
    let fifo = t.path("fifo");
    mkfifo(&fifo);
    std::fs::create_dir(t.path("dir")).unwrap();
    symlink("/dev/null", t.path("to-null")).unwrap();
    let cases = [
        ("/dev/null".to_string(), "is a character device"),
        ("/dev/stdout".to_string(), "is a symbolic link to"),
        (fifo.display().to_string(), "is a FIFO"),
        ("dir".to_string(), "is a directory"),
        (
            "to-null".to_string(),
            "is a symbolic link to a character device",
        ),
    ];
    let before = t.scratch_files();
    for (out, needle) in &cases {
        let a = t
            .cmd()
            .args(["export-pubkey", "--label", "k", "--force", "--out", out])
            .assert();
        refused(a, needle);
        let a = t
            .cmd()
            .args(["sign", "--label", "k", "--data", "m", "--out", out])
            .assert();
        refused(a, needle);
        let a = t
            .cmd()
            .args([
                "pca", "csr", "--label", "k", "--cn", "x", "--force", "--out", out,
            ])
            .assert();
        refused(a, needle);
    }
    assert_eq!(t.scratch_files(), before, "nothing written");
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(t.path("to-null"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_link_to_a_regular_file_is_written_through_and_kept() {
    let t = token();
    std::fs::write(t.path("real.pem"), "old\n").unwrap();
    symlink("real.pem", t.path("link.pem")).unwrap();
    let a = t
        .cmd()
        .args(["export-pubkey", "--label", "k", "--out", "link.pem"])
        .assert();
    refused(a, "link.pem already exists: pass --force");
    t.cmd()
        .args([
            "export-pubkey",
            "--label",
            "k",
            "--out",
            "link.pem",
            "--force",
        ])
        .assert()
        .success();
    assert!(std::fs::symlink_metadata(t.path("link.pem"))
        .unwrap()
        .file_type()
        .is_symlink());
    let pem = std::fs::read_to_string(t.path("real.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
}

#[test]
fn out_dash_means_stdout() {
    let t = token();
    let a = t
        .cmd()
        .args(["export-pubkey", "--label", "k", "--out", "-"])
        .assert()
        .success();
    assert!(stdout_of(&a).starts_with("-----BEGIN PUBLIC KEY-----"));
    let a = t
        .cmd()
        .args(["sign", "--label", "k", "--data", "m", "--out", "-"])
        .assert()
        .success();
    assert!(
        stdout_of(&a).starts_with("Signature: 30"),
        "{}",
        stdout_of(&a)
    );
    let a = t
        .cmd()
        .args(["pca", "csr", "--label", "k", "--cn", "x", "--out", "-"])
        .assert()
        .success();
    assert!(stdout_of(&a).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    assert!(!t.path("-").exists(), "no file named '-'");
}

#[test]
fn pca_csr_out_needs_force_to_overwrite() {
    let t = token();
    std::fs::write(t.path("d.csr"), "keep\n").unwrap();
    let a = t
        .cmd()
        .args(["pca", "csr", "--label", "k", "--cn", "x", "--out", "d.csr"])
        .assert();
    refused(a, "d.csr already exists: pass --force to overwrite it");
    assert_eq!(std::fs::read_to_string(t.path("d.csr")).unwrap(), "keep\n");
    let a = t
        .cmd()
        .args([
            "pca", "csr", "--label", "k", "--cn", "x", "--out", "d.csr", "--force",
        ])
        .assert()
        .success();
    assert!(
        stdout_of(&a).contains("CSR written to d.csr"),
        "{}",
        stderr_of(&a)
    );
    let csr = std::fs::read_to_string(t.path("d.csr")).unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
}
