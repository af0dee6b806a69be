//! Benchmark baseline for provisioning's HSM side: a plain loop with cryptoki directly (no
//! hsm-demo code), per device: C_GenerateKeyPair (EC P-256, token objects, the same templates as
//! `hsm-demo generate-key`), read CKA_EC_POINT, SHA-256 of a CSR-sized message, C_Sign (CKM_ECDSA).
//!
//! W worker threads, one PKCS#11 session each (one login per process), share N devices. Prints
//! `devices=N workers=W seconds=S rate=R errors=E`; a failed operation is counted, not retried.
//!
//!   keygen_csr_loop MODULE TOKEN_LABEL N WORKERS [LABEL_PREFIX]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::UserType;
use sha2::Digest;

/// DER OID of prime256v1.
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 || args.len() > 6 {
        eprintln!("usage: keygen_csr_loop MODULE TOKEN_LABEL N WORKERS [LABEL_PREFIX]");
        std::process::exit(2);
    }
    let n: usize = args[3].parse().expect("N");
    let workers: usize = args[4].parse().expect("WORKERS");
    let prefix = args.get(5).cloned().unwrap_or_else(|| "loop".into());
    let pin = std::env::var("HSM_DEMO_PIN").expect("HSM_DEMO_PIN");
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
    // Login is per token per process: log in on a first session, keep it open.
    let first = ctx.open_rw_session(slot).expect("open session");
    first
        .login(UserType::User, Some(&pin.into()))
        .expect("C_Login");

    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (ctx, next, errors, prefix) = (&ctx, next.clone(), errors.clone(), &prefix);
            s.spawn(move || {
                let session = ctx.open_rw_session(slot).expect("open session");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let label = format!("{prefix}-{i:06}").into_bytes();
                    let id = sha2::Sha256::digest(&label)[..8].to_vec();
                    let public_tpl = [
                        Attribute::Token(true),
                        Attribute::Private(false),
                        Attribute::Verify(true),
                        Attribute::EcParams(P256.to_vec()),
                        Attribute::Label(label.clone()),
                        Attribute::Id(id.clone()),
                    ];
                    let private_tpl = [
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Sign(true),
                        Attribute::Derive(false),
                        Attribute::Label(label.clone()),
                        Attribute::Id(id),
                    ];
                    let work = || -> Result<usize, cryptoki::error::Error> {
                        let (public, private) = session.generate_key_pair(
                            &Mechanism::EccKeyPairGen,
                            &public_tpl,
                            &private_tpl,
                        )?;
                        let point = session.get_attributes(public, &[AttributeType::EcPoint])?;
                        let point = match point.first() {
                            Some(Attribute::EcPoint(p)) => p.clone(),
                            _ => Vec::new(),
                        };
                        // A CSR's to-be-signed part is ~250 bytes: subject, SPKI, SAN extension.
                        let mut tbs = Vec::with_capacity(256);
                        tbs.extend_from_slice(&label);
                        tbs.extend_from_slice(&point);
                        tbs.resize(250, 0x30);
                        let digest = sha2::Sha256::digest(&tbs);
                        Ok(session.sign(&Mechanism::Ecdsa, private, &digest)?.len())
                    };
                    if work().is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    drop(first);
    ctx.finalize().ok();
    println!(
        "devices={n} workers={workers} seconds={secs:.6} rate={:.1} errors={}",
        n as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
}
