//! Benchmark baseline: a plain C_Sign loop with cryptoki directly (no hsm-demo code).
//!
//! Loads the module, finds the token by label, logs in (PIN from HSM_DEMO_PIN), finds the private
//! key by CKA_ID and signs N SHA-256 digests of the lines of FILE with CKM_ECDSA, discarding the
//! signatures. Prints the elapsed time of the loop alone and of the whole process work.
//!
//!   csign_loop MODULE TOKEN_LABEL KEY_ID_HEX FILE
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use sha2::Digest;

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: csign_loop MODULE TOKEN_LABEL KEY_ID_HEX FILE");
        std::process::exit(2);
    }
    let pin = std::env::var("HSM_DEMO_PIN").expect("HSM_DEMO_PIN");
    let data = std::fs::read(&args[4]).expect("read FILE");
    let ctx = Pkcs11::new(&args[1]).expect("load module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let slot = ctx
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|t| t.label().trim_end() == args[2])
                .unwrap_or(false)
        })
        .expect("token not found");
    let session = ctx.open_rw_session(slot).expect("open session");
    session
        .login(UserType::User, Some(&pin.into()))
        .expect("C_Login");
    let id = hex::decode(&args[3]).expect("KEY_ID_HEX");
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id),
        ])
        .expect("find")[0];
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let loop_start = Instant::now();
    let mut n = 0usize;
    let mut total_len = 0usize;
    for line in body.split(|&b| b == b'\n') {
        let digest = sha2::Sha256::digest(line);
        let sig = session
            .sign(&Mechanism::Ecdsa, key, &digest)
            .expect("C_Sign");
        total_len += sig.len();
        n += 1;
    }
    let loop_secs = loop_start.elapsed().as_secs_f64();
    drop(session);
    ctx.finalize().ok();
    println!(
        "signatures={n} loop_seconds={loop_secs:.6} total_seconds={:.6} sig_bytes={total_len}",
        start.elapsed().as_secs_f64()
    );
}
