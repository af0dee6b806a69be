//! The configuration file: found by `--config` (before the command), `HSM_DEMO_CONFIG` or the XDG
//! path; its values are defaults under flags and environment variables (`config show` names each
//! source); every problem is reported in one line with exit 2 before anything runs; a PIN in it is
//! refused. Its values take effect: a token and module for the HSM commands, and CA, table, region
//! and endpoint for `provision` against the stand-in.

mod common;
mod pca_support;

use common::{stderr_of, stdout_of, TestToken};
use pca_support::PcaEnv;

fn show(c: &mut assert_cmd::Command) -> serde_json::Value {
    let a = c.args(["--json", "config", "show"]).assert().success();
    serde_json::from_str(&stdout_of(&a)).unwrap()
}

fn row<'a>(v: &'a serde_json::Value, key: &str) -> (&'a str, &'a str) {
    let r = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap();
    (
        r["value"].as_str().unwrap_or("-"),
        r["source"].as_str().unwrap(),
    )
}

#[test]
fn show_names_each_source_flag_over_env_over_file_over_default() {
    let t = TestToken::new("cfg");
    let file = t.path("c.toml");
    std::fs::write(
        &file,
        "token = \"from-file\"\ntable = \"file-table\"\nvalidity = \"90d\"\nregion = \"eu-west-1\"\n",
    )
    .unwrap();
    let mut c = t.cmd_bare();
    c.env("HSM_DEMO_TABLE", "env-table")
        .env_remove("AWS_REGION")
        .args(["--config", "c.toml", "--token", "from-flag"]);
    let v = show(&mut c);
    assert_eq!(v["file"]["found_by"], "--config");
    assert_eq!(row(&v, "token"), ("from-flag", "flag"));
    assert_eq!(row(&v, "table"), ("env-table", "env HSM_DEMO_TABLE"));
    assert_eq!(row(&v, "validity").0, "90d");
    assert!(row(&v, "validity").1.starts_with("file "));
    assert!(row(&v, "region").1.starts_with("file "), "{v}");
    assert_eq!(row(&v, "template"), ("client", "default"));
    assert_eq!(row(&v, "ca_arn"), ("-", "unset"));

    // XDG path when nothing else names a file; HSM_DEMO_CONFIG beats it; --config beats both.
    let xdg = t.path("xdg");
    std::fs::create_dir_all(xdg.join("hsm-demo")).unwrap();
    std::fs::write(xdg.join("hsm-demo/config.toml"), "table = \"xdg-table\"\n").unwrap();
    std::fs::write(t.path("env.toml"), "table = \"env-file-table\"\n").unwrap();
    let base = || {
        let mut c = t.cmd_bare();
        c.env_remove("HSM_DEMO_TABLE")
            .env_remove("HSM_DEMO_CONFIG")
            .env("XDG_CONFIG_HOME", &xdg);
        c
    };
    assert_eq!(row(&show(&mut base()), "table").0, "xdg-table");
    assert_eq!(
        row(
            &show(base().env("HSM_DEMO_CONFIG", t.path("env.toml"))),
            "table"
        )
        .0,
        "env-file-table"
    );
    assert_eq!(
        row(
            &show(
                base()
                    .env("HSM_DEMO_CONFIG", t.path("env.toml"))
                    .args(["--config", "c.toml"])
            ),
            "table"
        )
        .0,
        "file-table"
    );
}

#[test]
fn every_problem_in_one_line_exit_2_and_nothing_runs() {
    let t = TestToken::new("cfg");
    std::fs::write(
        t.path("bad.toml"),
        "user_pin = \"123456\"\ntabel = \"x\"\nvalidity = \"30m\"\nissue_tps = -1\ntemplate = 3\n",
    )
    .unwrap();
    let a = t
        .cmd()
        .args(["--config", "bad.toml", "generate-key", "--label", "never"])
        .assert()
        .failure()
        .code(2);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "'user_pin'",
        "--pin-file",
        "'tabel'",
        "30mo",
        "'issue_tps'",
        "'template'",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("123456"), "the PIN is never echoed: {err}");
    let objects = t
        .cmd()
        .args(["--json", "list-slots", "--objects"])
        .assert()
        .success();
    assert!(!stdout_of(&objects).contains("never"), "no key generated");

    let a = t
        .cmd()
        .args(["--config", "missing.toml", "list-slots"])
        .assert()
        .failure()
        .code(2);
    assert!(stderr_of(&a).contains("missing.toml"));
}

#[test]
fn the_files_values_take_effect_for_the_hsm_and_for_provision() {
    let env = PcaEnv::new();
    let module = env.token.kind.module_path();
    std::fs::write(
        env.path("factory.toml"),
        format!(
            "module = \"{}\"\ntoken = \"{}\"\nca_arn = \"{}\"\ntable = \"{}\"\nregion = \"{}\"\nendpoint_url = \"{}\"\nvalidity = \"20d\"\n",
            module.display(),
            env.token.label,
            env.ca(),
            env.table,
            common::standin::REGION,
            env.endpoint
        ),
    )
    .unwrap();
    let mut c = env.cmd();
    for k in [
        "HSM_DEMO_MODULE",
        "HSM_DEMO_TOKEN",
        "HSM_DEMO_TABLE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        c.env_remove(k);
    }
    let a = c
        .args([
            "--config",
            "factory.toml",
            "--json",
            "provision",
            "--device-id",
            "cfg-1",
        ])
        .assert()
        .success();
    let out: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(out["record"]["device_id"], "cfg-1", "{out}");
    // Recorded in the file's table, with the file's validity (20 days).
    let shown = env.show("cfg-1");
    assert_eq!(shown["current"]["status"], "ISSUED", "{shown}");
    let cert = env.path("cfg-1.cert.pem");
    let o = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-startdate", "-enddate", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let date = |p: &str| {
        let l = text.lines().find(|l| l.starts_with(p)).unwrap();
        let s = l.split_once('=').unwrap().1;
        let o = std::process::Command::new("date")
            .args(["-u", "-d", s, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let days = (date("notAfter") - date("notBefore")) as f64 / 86_400.0;
    assert!((days - 20.0).abs() < 1.0, "validity {days} days: {text}");
}
