//! Usage errors are one `error:` line plus a `--help` hint naming the command, exit 2; help and
//! version still print in full with exit 0.

use assert_cmd::Command;

fn hsm_demo() -> Command {
    let mut c = Command::cargo_bin("hsm-demo").unwrap();
    c.env_remove("HSM_DEMO_CA_ARN");
    c
}

#[test]
fn usage_errors_are_one_error_line_and_a_help_hint_with_exit_2() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["provision", "--bogus"],
            "'--bogus'",
            "hsm-demo provision --help",
        ),
        (
            &["provison"],
            "did you mean 'provision'?",
            "hsm-demo --help",
        ),
        (
            &[
                "provision",
                "--ca-arn",
                "x",
                "--device-id",
                "d",
                "--concurrency",
                "0",
            ],
            "'--concurrency <N>'",
            "hsm-demo provision --help",
        ),
        (
            &["provision"],
            "missing required arguments: --ca-arn",
            "hsm-demo provision --help",
        ),
        (
            &["pca", "issue", "--ca-arn", "x"],
            "--device-id <ID>, --csr <FILE>",
            "hsm-demo pca issue --help",
        ),
        (
            &["pca"],
            "'hsm-demo pca' needs a command: csr, issue",
            "hsm-demo pca --help",
        ),
        (
            &[],
            "'hsm-demo' needs a command: list-slots",
            "hsm-demo --help",
        ),
        (
            &[
                "provision",
                "--ca-arn",
                "x",
                "--device-id",
                "d",
                "--retry-failed",
            ],
            "--retry-failed needs --manifest",
            "",
        ),
    ];
    for (args, names, hint) in cases {
        let a = hsm_demo().args(*args).assert().failure().code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
        assert!(lines[0].contains(names), "{args:?}: {err}");
        if hint.is_empty() {
            assert_eq!(lines.len(), 1, "{args:?}: {err}");
        } else {
            assert_eq!(lines.len(), 2, "{args:?}: {err}");
            assert_eq!(
                lines[1],
                format!("For more information, try '{hint}'."),
                "{args:?}"
            );
        }
        assert!(a.get_output().stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_and_version_still_print_in_full() {
    let a = hsm_demo().args(["provision", "--help"]).assert().success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("Usage: hsm-demo provision"), "{out}");
    assert!(out.contains("--retry-budget-secs"), "{out}");
    let a = hsm_demo().arg("--version").assert().success();
    assert!(String::from_utf8_lossy(&a.get_output().stdout).starts_with("hsm-demo "));
}
