//! Empty on purpose: this crate only exists so that `cargo build -p kryoptic` inside this directory
//! produces `libkryoptic_pkcs11.so` with pinned versions and features (see Cargo.toml).
