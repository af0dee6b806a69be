//! `make bench-check` (`scripts/bench/check.py`): every row of docs/benchmarks.md carries a verdict
//! against its target, and the checker prints exactly the rows that miss.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench/check.py")
}

/// Runs the checker on `file` → (exit status, stdout, stderr).
fn check(file: &Path, strict: bool) -> (i32, String, String) {
    let mut c = Command::new("python3");
    c.arg(script());
    if strict {
        c.arg("--strict");
    }
    let out = c.arg(file).output().expect("python3");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TABLE: &str = "# Benchmarks\n\n## Speed\n\n\
| # | what | ratio | target | met |\n|---|---|---|---|---|\n\
| 1 | fast path | **2.0×** | ≥ 1.5× | yes |\n\
| 2 | slow path | **0.5×** | ≥ 0.9× | **no** |\n\
| 3 | scaling | **0.7×** | — | no target |\n\n\
Text after the table | with a pipe is not a row.\n";

#[test]
fn prints_exactly_the_rows_that_miss_and_strict_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "b.md", TABLE);
    let (code, out, err) = check(&f, false);
    assert_eq!(code, 0, "{out}{err}");
    let missed: Vec<_> = out.lines().filter(|l| l.starts_with("MISSED")).collect();
    assert_eq!(missed.len(), 1, "{out}");
    assert!(
        missed[0].contains("2 slow path") && missed[0].contains("≥ 0.9×"),
        "{out}"
    );
    assert!(
        out.contains("3 rows: 1 met, 1 missed, 1 without a target"),
        "{out}"
    );
    let (code, _, _) = check(&f, true);
    assert_eq!(code, 1, "--strict exits 1 when a row misses");
    // All met: --strict passes.
    let f = write(dir.path(), "ok.md", &TABLE.replace("| **no** |", "| yes |"));
    let (code, out, _) = check(&f, true);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MISSED"), "{out}");
}

#[test]
fn a_row_without_a_verdict_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, what) in [
        (
            "nomet.md",
            "## S\n\n| what | ratio | target |\n|---|---|---|\n| x | 1× | ≥ 1× |\n",
            "no met column",
        ),
        ("dash.md", &TABLE.replace("| yes |", "| — |"), "verdict '—'"),
        (
            "notarget.md",
            &TABLE.replace("| ≥ 1.5× | yes |", "| — | yes |"),
            "without a target",
        ),
    ] {
        let f = write(dir.path(), name, text);
        let (code, out, err) = check(&f, false);
        assert_eq!(code, 2, "{name}: {out}{err}");
        assert!(err.contains(what), "{name}: {err}");
    }
}

/// The committed results: every table with a target has a verdict on every row, and the rows that
/// miss are the ones marked "no".
#[test]
fn the_committed_benchmarks_carry_a_verdict_on_every_row() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let (code, out, err) = check(&f, false);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&f).unwrap();
    let marked_no = text
        .lines()
        .filter(|l| l.starts_with('|') && l.trim_end().ends_with("| **no** |"))
        .count();
    let missed = out.lines().filter(|l| l.starts_with("MISSED")).count();
    assert_eq!(missed, marked_no, "{out}");
}
