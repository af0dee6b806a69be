//! Build script: release binaries are linked with packed relative relocations (DT_RELR,
//! `-z pack-relative-relocs`) on Linux when the linker knows the option (GNU ld >= 2.38; the
//! binary then needs glibc >= 2.36, which the build machine has when its ld has the option on
//! Debian 12 and later). A position-independent executable then applies its relative
//! relocations from a compact bitmap at start-up instead of one 24-byte entry each, which
//! shortens every short-lived invocation (the one-shot `sign` is measured in docs/benchmarks.md).
//! Debug builds and examples are linked as before; `HSM_DEMO_NO_RELR=1` turns it off.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=HSM_DEMO_NO_RELR");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let off = std::env::var_os("HSM_DEMO_NO_RELR").is_some_and(|v| !v.is_empty() && v != "0");
    if linux && release && !off && linker_knows_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the system linker lists `pack-relative-relocs` in its help.
fn linker_knows_relr() -> bool {
    Command::new("ld")
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("pack-relative-relocs"))
        .unwrap_or(false)
}
