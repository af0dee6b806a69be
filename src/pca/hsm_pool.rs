//! A pool of HSM workers for batch provisioning: N OS threads, each owning one logged-in PKCS#11
//! session (`Session` is `Send` but not `Sync`), fed from one bounded queue.
//!
//! Async tasks call [`HsmPool::csr`] (via [`PoolKeys`], a [`DeviceKeys`]) and await the worker's
//! reply, so the AWS side never blocks on the HSM and the HSM never waits on AWS.
//!
//! Key look-up and generation are serialised across the workers (an `RwLock`: key work
//! exclusive, signing shared — see [`hsm_csr_locked`]); measured on SoftHSM2 2.6.1, concurrent
//! C_GenerateKeyPair from two threads failed with CKR_GENERAL_ERROR and left an unlabelled private
//! key behind. Signing runs in parallel. The lock also guards the pool's [`KeyIndex`] (the key
//! labels on the token, read once at start), which lets a device the registry has never seen get
//! its key without a token search.
//!
//! Transient token errors (SoftHSM's file object store under concurrent writers, CloudHSM's
//! CKR_DEVICE_ERROR under throttling) are retried a bounded number of times. Retrying
//! [`hsm_csr`] is safe even for key generation: it looks the key up by label *first* — a pair left
//! complete by a failed call is reused, a half pair is removed and regenerated — so a retry never
//! leaves two keys for one device.

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::hsm::key_index::KeyIndex;
use crate::hsm::module::Module;
use crate::hsm::session::HsmSession;
use crate::pca::csr::Csr;
use crate::pca::provision::{hsm_csr_locked, DeviceKeys, DeviceRequest, KeyOutcome};

/// Attempts of one device's HSM work on transient token errors.
pub const HSM_ATTEMPTS: u32 = 4;

type Reply = oneshot::Sender<Result<(Csr, KeyOutcome)>>;

struct Job {
    req: DeviceRequest,
    never_claimed: bool,
    reply: Reply,
}

/// The worker pool. Dropping it ends the workers after their current job and joins them (their
/// sessions must close before the module is finalised: SoftHSM deadlocks otherwise).
pub struct HsmPool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Transient errors retried so far (all workers).
    retried: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for HsmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmPool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// Whether a PKCS#11 failure is worth retrying (the token, not the request, failed).
pub fn is_transient(e: &Error) -> bool {
    matches!(
        e.ckr(),
        Some(
            "CKR_GENERAL_ERROR"
                | "CKR_FUNCTION_FAILED"
                | "CKR_DEVICE_ERROR"
                | "CKR_DEVICE_MEMORY"
                | "CKR_SESSION_HANDLE_INVALID"
                | "CKR_OBJECT_HANDLE_INVALID"
                | "CKR_KEY_HANDLE_INVALID"
        )
    )
}

impl HsmPool {
    /// Opens `n` sessions on `module`'s token `token` (label or serial), logs each in with `pin`
    /// (PKCS#11 login is per application: the first login counts for all sessions), reads the
    /// token's key labels ([`KeyIndex::load`]) and starts one worker thread per session. Fails —
    /// with nothing started — if any session cannot be opened.
    pub fn start(
        module: &Arc<Module>,
        token: Option<&str>,
        pin: &SecretString,
        n: usize,
    ) -> Result<HsmPool> {
        let n = n.max(1);
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = HsmSession::open_on(module.clone(), token)?;
            s.login_with_pin(pin)?;
            sessions.push(s);
        }
        let index = KeyIndex::load(&sessions[0])?;
        tracing::debug!(keys = index.len(), "key labels indexed");
        let (tx, rx) = mpsc::channel::<Job>(n * 2);
        let rx = Arc::new(Mutex::new(rx));
        let retried = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let store = Arc::new(RwLock::new(index));
        let mut workers = Vec::with_capacity(n);
        for (i, session) in sessions.into_iter().enumerate() {
            let rx = rx.clone();
            let retried = retried.clone();
            let store = store.clone();
            let h = std::thread::Builder::new()
                .name(format!("hsm-worker-{i}"))
                .spawn(move || worker(session, rx, retried, &store))
                .map_err(|e| Error::io("cannot start an HSM worker thread", e))?;
            workers.push(h);
        }
        Ok(HsmPool {
            tx: Some(tx),
            workers,
            retried,
        })
    }

    /// Number of workers (sessions).
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Transient HSM errors retried so far.
    pub fn retried(&self) -> u64 {
        self.retried.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Finds or creates the device key and signs its CSR on some worker (`never_claimed`: see
    /// [`hsm_csr_locked`]).
    pub fn csr(
        &self,
        req: &DeviceRequest,
        never_claimed: bool,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let tx = self.tx.clone();
        let req = req.clone();
        async move {
            let (reply, rx) = oneshot::channel();
            let tx = tx.ok_or_else(|| Error::Other("the HSM workers have stopped".into()))?;
            tx.send(Job {
                req,
                never_claimed,
                reply,
            })
            .await
            .map_err(|_| Error::Other("the HSM workers have stopped".into()))?;
            rx.await
                .map_err(|_| Error::Other("an HSM worker stopped unexpectedly".into()))?
        }
    }

    /// Stops the workers (after their current job) and waits for them; their sessions close
    /// here, before the module can be finalised. Also done on drop.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for HsmPool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker(
    session: HsmSession,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    retried: Arc<std::sync::atomic::AtomicU64>,
    store: &RwLock<KeyIndex>,
) {
    loop {
        let job = {
            let Ok(mut guard) = rx.lock() else { return };
            guard.blocking_recv()
        };
        let Some(Job {
            req,
            never_claimed,
            reply,
        }) = job
        else {
            return;
        };
        let mut attempt = 1;
        let res = loop {
            match hsm_csr_locked(&session, &req, Some(store), never_claimed) {
                Err(e) if attempt < HSM_ATTEMPTS && is_transient(&e) => {
                    retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(device = %req.device, attempt, "HSM error, retrying: {e}");
                    let jitter = rand::random_range(0..=10u64 * u64::from(attempt));
                    std::thread::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter));
                    attempt += 1;
                }
                r => break r,
            }
        };
        let _ = reply.send(res);
    }
}

/// [`DeviceKeys`] backed by the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolKeys<'a>(pub &'a HsmPool);

impl DeviceKeys for PoolKeys<'_> {
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        never_claimed: bool,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        self.0.csr(req, never_claimed)
    }
}
