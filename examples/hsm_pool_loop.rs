//! Benchmark: the HSM half of `hsm-demo provision --manifest` alone — hsm-demo's own worker pool
//! (`hsm_demo::pca::hsm_pool::HsmPool`, one PKCS#11 session per worker thread, as `provision
//! --concurrency W` starts it) finding-or-creating each device's key and signing its CSR, with no
//! AWS call. Compared with examples/keygen_csr_loop.rs (cryptoki directly) by bench-provision.
//!
//! Device i: label `device-PREFIX-<i:06>`, CN = id, one DNS and one SPIFFE URI SAN (like the
//! benchmark manifests). PIN from HSM_DEMO_PIN. Prints
//! `mode=hsm-pool devices=N workers=W seconds=S rate=R errors=E retried=T`.
//!
//!   hsm_pool_loop MODULE TOKEN_LABEL N WORKERS [PREFIX]
use std::sync::Arc;
use std::time::Instant;

use hsm_demo::hsm::module::Module;
use hsm_demo::pca::csr::CsrRequest;
use hsm_demo::pca::hsm_pool::HsmPool;
use hsm_demo::pca::ids::DeviceId;
use hsm_demo::pca::provision::DeviceRequest;
use secrecy::SecretString;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 || args.len() > 6 {
        eprintln!("usage: hsm_pool_loop MODULE TOKEN_LABEL N WORKERS [PREFIX]");
        std::process::exit(2);
    }
    let n: usize = args[3].parse().expect("N");
    let workers: usize = args[4].parse().expect("WORKERS");
    let prefix = args.get(5).cloned().unwrap_or_else(|| "pool".into());
    let pin = SecretString::from(std::env::var("HSM_DEMO_PIN").expect("HSM_DEMO_PIN"));
    let module = Arc::new(Module::load(Some(std::path::Path::new(&args[1]))).expect("module"));
    let pool = Arc::new(HsmPool::start(&module, Some(&args[2]), &pin, workers).expect("pool"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let errors = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let id = format!("{prefix}-{i:06}");
            let mut req = DeviceRequest::new(DeviceId::parse(&id).expect("device id"));
            req.csr = CsrRequest {
                cn: Some(id.clone()),
                san_dns: vec![format!("{id}.devices.example.org")],
                san_uri: vec![format!("spiffe://example.org/device/{id}")],
            };
            let pool = pool.clone();
            // New devices, as a batch sees them on their first run (no registry item yet).
            let binding = hsm_demo::pca::device_key::KeyBinding {
                own_id: hsm_demo::pca::device_key::intent_key_id(req.device.as_str(), 0, "bench"),
                unsearched: true,
                ..Default::default()
            };
            set.spawn(async move { pool.csr(&req, &binding).await.map(|(csr, _)| csr) });
        }
        let mut errors = 0usize;
        while let Some(r) = set.join_next().await {
            if !matches!(r, Ok(Ok(_))) {
                errors += 1;
            }
        }
        errors
    });
    let secs = start.elapsed().as_secs_f64();
    let retried = pool.retried();
    if let Ok(pool) = Arc::try_unwrap(pool) {
        pool.shutdown();
    }
    println!(
        "mode=hsm-pool devices={n} workers={workers} seconds={secs:.6} rate={:.1} errors={errors} retried={retried}",
        (n - errors) as f64 / secs
    );
}
