//! Hostile input to the HSM-only commands: output paths that are not regular files, `--out -`,
//! oversized or endless inputs (`/dev/zero`, FIFOs), PIN files with a BOM or loose permissions,
//! labels with control characters. Each refusal is one `error:` line, exit 2 (usage; 1 when the PIN
//! source fails), and nothing changed.
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

/// Asserts the one-line refusal contract of a usage error (exit 2) and returns stderr.
fn refused(a: assert_cmd::assert::Assert, needle: &str) -> String {
    refused_with(a, 2, needle)
}

/// [`refused`] with the exit status `code` (1: the PIN source failed, not the command line).
fn refused_with(a: assert_cmd::assert::Assert, code: i32, needle: &str) -> String {
    let out = a.get_output();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
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

#[test]
fn endless_inputs_are_read_with_a_bound() {
    let t = token();
    let a = t
        .cmd()
        .env_remove("HSM_DEMO_PIN")
        .args([
            "--pin-file",
            "/dev/zero",
            "sign",
            "--label",
            "k",
            "--data",
            "m",
        ])
        .assert();
    refused_with(a, 1, "PIN file /dev/zero is larger than 1024 bytes");
    let a = t
        .cmd()
        .args([
            "verify",
            "--label",
            "k",
            "--data",
            "m",
            "--sig-file",
            "/dev/zero",
        ])
        .assert();
    refused(a, "signature file /dev/zero is larger than 1024 bytes");
    let a = t
        .cmd()
        .args([
            "verify",
            "--pubkey",
            "/dev/zero",
            "--data",
            "m",
            "--sig",
            "3000",
        ])
        .assert();
    refused(a, "public key file /dev/zero is larger than 65536 bytes");
    let a = t
        .cmd()
        .args(["key-ceremony", "verify-transcript", "/dev/zero"])
        .assert();
    refused(a, "transcript /dev/zero is larger than 16777216 bytes");
}

#[test]
fn sign_hashes_its_input_as_a_stream() {
    let t = token();
    // A sparse 256 MiB file: reading it costs no disk, holding it would cost 256 MiB of memory
    // (a debug build hashes too slowly for the 1 GiB of the manual check in the docs).
    let big = std::fs::File::create(t.path("big.bin")).unwrap();
    big.set_len(256 << 20).unwrap();
    drop(big);
    t.cmd()
        .args(["export-pubkey", "--label", "k", "--out", "pub.pem"])
        .assert()
        .success();
    let o = t
        .tool("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M"])
        .arg(assert_cmd::cargo::cargo_bin("hsm-demo"))
        .args([
            "sign", "--label", "k", "--in", "big.bin", "--format", "raw", "--out", "sig.der",
        ])
        .env("HSM_DEMO_PIN", &t.pin)
        .env("HSM_DEMO_TOKEN", &t.label)
        .env("HSM_DEMO_MODULE", t.kind.module_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .expect("maxrss line")
        .trim()
        .parse()
        .unwrap();
    eprintln!("sign --in of 256 MiB: peak RSS {kib} KiB");
    assert!(kib < 96 * 1024, "peak RSS {kib} KiB for a 256 MiB input");
    // The signature is over the whole file.
    let v = t
        .tool("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig.der",
            "big.bin",
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn pin_file_with_a_bom_works_and_a_world_readable_one_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let t = token();
    let pin = t.path("pin.txt");
    std::fs::write(&pin, format!("\u{feff}{}\r\n", t.pin)).unwrap();
    let run = || {
        t.cmd()
            .env_remove("HSM_DEMO_PIN")
            .args([
                "--pin-file",
                "pin.txt",
                "sign",
                "--label",
                "k",
                "--data",
                "m",
            ])
            .assert()
            .success()
    };
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = stderr_of(&run());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("warning: PIN file pin.txt is readable by every user (mode 644)"),
        "{err}"
    );
    assert!(!err.contains(&t.pin));
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(stderr_of(&run()), "");
}

#[test]
fn sign_intermediate_refuses_oversized_doubled_and_trailing_csrs() {
    let t = TestToken::new("hostile-ceremony");
    t.cmd_no_token().arg("key-ceremony").assert().success();
    let transcript = || std::fs::read_to_string(t.path("ceremony/transcript.jsonl")).unwrap();
    let before = transcript();
    let req = |out: &str, cn: &str| {
        let o = t
            .tool("openssl")
            .args(["req", "-new", "-nodes", "-newkey", "ec"])
            .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "i.key"])
            .args(["-subj", &format!("/CN={cn}"), "-out", out])
            .output()
            .unwrap();
        assert!(o.status.success());
        std::fs::read_to_string(t.path(out)).unwrap()
    };
    let a = req("a.csr", "Intermediate A");
    let b = req("b.csr", "Intermediate B");
    std::fs::write(t.path("two.csr"), format!("{a}{b}")).unwrap();
    std::fs::write(t.path("trail.csr"), format!("{a}\u{0}\u{0}junk")).unwrap();
    let big = format!(
        "[req]\ndistinguished_name=dn\nreq_extensions=ext\nprompt=no\n[dn]\nCN=big\n[ext]\n1.2.3.4=ASN1:UTF8String:{}\n",
        "x".repeat(1_250_000)
    );
    std::fs::write(t.path("big.cnf"), big).unwrap();
    let o = t
        .tool("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", "big.key"])
        .args(["-config", "big.cnf", "-out", "big.csr"])
        .output()
        .unwrap();
    assert!(o.status.success());
    for (csr, needle) in [
        ("big.csr", "is larger than 32768 bytes"),
        ("two.csr", "holds more than one PEM block"),
        ("trail.csr", "bytes after its PEM block"),
    ] {
        let a = t
            .cmd_no_token()
            .args([
                "key-ceremony",
                "sign-intermediate",
                "--csr",
                csr,
                "--out",
                "i.pem",
            ])
            .assert();
        let err = stderr_of(&a);
        assert_eq!(a.get_output().status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{csr}: {err}");
        assert!(!t.path("i.pem").exists());
        assert_eq!(transcript(), before, "transcript changed");
    }
    // The single CSR still signs.
    t.cmd_no_token()
        .args([
            "key-ceremony",
            "sign-intermediate",
            "--csr",
            "a.csr",
            "--out",
            "i.pem",
        ])
        .assert()
        .success();
}

#[test]
fn labels_with_control_characters_are_refused() {
    let t = token();
    for (label, shown) in [
        ("a\nb", "'\\n' at position 2"),
        ("x\u{1b}[31m", "'\\u{1b}' at position 2"),
    ] {
        let a = t.cmd().args(["generate-key", "--label", label]).assert();
        let err = refused(a, "--label must not contain control characters");
        assert!(err.contains(shown), "{err}");
        assert!(!err.contains('\u{1b}'));
    }
    // Nothing was created: only the set-up key is on the token.
    let a = t
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    let labels: Vec<String> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["objects"].as_array())
        .flatten()
        .map(|o| o["label"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        !labels.is_empty() && labels.iter().all(|l| l == "k"),
        "{labels:?}"
    );
}

#[test]
fn expect_head_must_be_hex_and_a_config_reports_every_problem() {
    let t = TestToken::new("hostile-head");
    t.cmd_no_token().arg("key-ceremony").assert().success();
    for bad in ["zz", "9f86d081", &"g".repeat(64)] {
        let a = t
            .cmd_no_token()
            .args([
                "key-ceremony",
                "verify-transcript",
                "ceremony/transcript.jsonl",
            ])
            .arg(format!("--expect-head={bad}"))
            .assert();
        refused(a, "is not a transcript head: expected 64 hex digits");
    }
    std::fs::write(
        t.path("bad.toml"),
        "operators = [\"alice\", \"bob\"]\nextra = 1\n[key]\ncurve = \"p521\"\n[subject]\ncommon_name = \"R\"\ncountry = \"Germany\"\n[certificate]\nvalidity = \"30m\"\n[output]\ndir = \"out\"\n",
    )
    .unwrap();
    let a = t
        .cmd_no_token()
        .args(["key-ceremony", "--config", "bad.toml"])
        .assert();
    let err = refused(a, "4 problems");
    for want in [
        "unknown field `extra`",
        "key.curve: unsupported curve 'p521'",
        "subject.country: 'Germany'",
        "certificate.validity: '30m' is ambiguous",
    ] {
        assert!(err.contains(want), "missing '{want}' in {err}");
    }
    assert!(!t.path("out").exists());
}
