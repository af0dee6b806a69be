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
//! CKR_DEVICE_ERROR under throttling, stale handles: [`crate::hsm::retry::classify`]) are retried a
//! bounded number of times. Retrying
//! [`hsm_csr_locked`] is safe even for key generation: a retry searches the label (the failed
//! attempt put it in the index) and finds the pair by this claim's own CKA_ID — a complete pair is
//! reused, a half pair is removed and regenerated — so a retry never leaves two keys for one device.
//!
//! Ending the process: [`HsmPool::halt`] closes a gate every job passes through, waits for the
//! jobs inside it to finish, and keeps the workers out from then on — so a process that must end
//! at once (a second Ctrl-C) ends between PKCS#11 calls, never inside C_GenerateKeyPair. Ending a
//! process with `exit()` while a worker was inside SoftHSM's C_GenerateKeyPair ran SoftHSM's
//! exit-time teardown under the live call: SIGSEGV in 8 runs of 10, and an unlabelled key object
//! left on the token.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::hsm::key_index::KeyIndex;
use crate::hsm::module::Module;
use crate::hsm::retry;
use crate::hsm::session::HsmSession;
use crate::pca::csr::Csr;
use crate::pca::device_key::{self, KeyBinding};
use crate::pca::provision::{hsm_csr_locked, DeviceKeys, DeviceRequest, KeyOutcome};

/// Attempts of one device's HSM work on transient token errors.
pub const HSM_ATTEMPTS: u32 = 4;

/// What a worker does for one device.
enum Work {
    /// Find or make the key and sign the CSR.
    Csr(oneshot::Sender<Result<(Csr, KeyOutcome)>>),
    /// Remove the key a given-up claim made.
    Discard(oneshot::Sender<Result<usize>>),
}

struct Job {
    req: DeviceRequest,
    binding: KeyBinding,
    work: Work,
}

/// The gate of [`HsmPool::halt`]: how many jobs are inside, and whether it is closed.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

/// A job inside the gate; leaving it wakes a waiting [`Gate::close_and_drain`].
struct Inside<'a>(&'a Gate);

impl Gate {
    /// Enters the gate; once it is closed, blocks for good (the process is about to end).
    fn enter(&self) -> Inside<'_> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.0 += 1;
        Inside(self)
    }

    /// Closes the gate and waits up to `limit` for the jobs inside to leave: true if they did.
    fn close_and_drain(&self, limit: Duration) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.1 = true;
        let (g, _) = self
            .cv
            .wait_timeout_while(g, limit, |s| s.0 > 0)
            .unwrap_or_else(|p| p.into_inner());
        g.0 == 0
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let mut g = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        g.0 -= 1;
        self.0.cv.notify_all();
    }
}

/// The worker pool. Dropping it ends the workers after their current job and joins them (their
/// sessions must close before the module is finalised: SoftHSM deadlocks otherwise).
pub struct HsmPool {
    tx: Option<mpsc::Sender<Job>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Transient errors retried so far (all workers).
    retried: Arc<std::sync::atomic::AtomicU64>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for HsmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmPool")
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// Whether a PKCS#11 failure is worth retrying (the token, not the request, failed): redoing the
/// device's HSM work may succeed ([`retry::may_succeed_when_redone`]).
pub fn is_transient(e: &Error) -> bool {
    e.rv().is_some_and(retry::may_succeed_when_redone)
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
        let gate = Arc::new(Gate::default());
        let mut workers = Vec::with_capacity(n);
        for (i, session) in sessions.into_iter().enumerate() {
            let rx = rx.clone();
            let retried = retried.clone();
            let store = store.clone();
            let gate = gate.clone();
            let h = std::thread::Builder::new()
                .name(format!("hsm-worker-{i}"))
                .spawn(move || worker(session, rx, retried, &store, &gate))
                .map_err(|e| Error::io("cannot start an HSM worker thread", e))?;
            workers.push(h);
        }
        Ok(HsmPool {
            tx: Some(tx),
            workers,
            retried,
            gate,
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

    /// Finds, creates or repairs the device key and signs its CSR on some worker
    /// ([`hsm_csr_locked`]).
    pub fn csr(
        &self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(req, binding, Work::Csr(reply));
        async move {
            sent.await?;
            rx.await
                .map_err(|_| Error::Other("an HSM worker stopped unexpectedly".into()))?
        }
    }

    /// Removes the key pair a given-up claim made ([`device_key::discard`]) on some worker.
    pub fn discard(
        &self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<usize>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(req, binding, Work::Discard(reply));
        async move {
            sent.await?;
            rx.await
                .map_err(|_| Error::Other("an HSM worker stopped unexpectedly".into()))?
        }
    }

    fn send(
        &self,
        req: &DeviceRequest,
        binding: &KeyBinding,
        work: Work,
    ) -> impl Future<Output = Result<()>> {
        let tx = self.tx.clone();
        let job = Job {
            req: req.clone(),
            binding: binding.clone(),
            work,
        };
        async move {
            let tx = tx.ok_or_else(|| Error::Other("the HSM workers have stopped".into()))?;
            tx.send(job)
                .await
                .map_err(|_| Error::Other("the HSM workers have stopped".into()))
        }
    }

    /// Lets the jobs in progress finish (up to `limit`) and starts no new PKCS#11 work, for good:
    /// afterwards the process can end at once without a worker inside a PKCS#11 call. Returns
    /// false if some job was still running at `limit`.
    pub fn halt(&self, limit: Duration) -> bool {
        self.gate.close_and_drain(limit)
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
    gate: &Gate,
) {
    loop {
        let job = {
            let Ok(mut guard) = rx.lock() else { return };
            guard.blocking_recv()
        };
        let Some(Job { req, binding, work }) = job else {
            return;
        };
        match work {
            Work::Csr(reply) => {
                let r = with_retries(&req, &retried, || {
                    let _inside = gate.enter();
                    hsm_csr_locked(&session, &req, Some(store), &binding)
                });
                let _ = reply.send(r);
            }
            Work::Discard(reply) => {
                let r = with_retries(&req, &retried, || {
                    let _inside = gate.enter();
                    let _keys = store.write().unwrap_or_else(|p| p.into_inner());
                    device_key::discard(&session, &req, &binding)
                });
                let _ = reply.send(r);
            }
        }
    }
}

/// Runs `f` up to [`HSM_ATTEMPTS`] times while it fails with a transient token error.
fn with_retries<T>(
    req: &DeviceRequest,
    retried: &std::sync::atomic::AtomicU64,
    mut f: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if attempt < HSM_ATTEMPTS && is_transient(&e) => {
                retried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(device = %req.device, attempt, "HSM error, retrying: {e}");
                let jitter = rand::random_range(0..=10u64 * u64::from(attempt));
                std::thread::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter));
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// [`DeviceKeys`] backed by the pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolKeys<'a>(pub &'a HsmPool);

impl DeviceKeys for PoolKeys<'_> {
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        self.0.csr(req, binding)
    }

    fn discard(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<usize>> {
        self.0.discard(req, binding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halting_waits_for_the_job_inside_and_keeps_new_ones_out() {
        let gate = Arc::new(Gate::default());
        // Nobody inside: drained at once.
        assert!(Gate::default().close_and_drain(Duration::ZERO));
        let inside = gate.enter();
        // A job inside and a limit that passes first: not drained.
        assert!(!gate.close_and_drain(Duration::from_millis(20)));
        // The job ends while the halt waits: drained.
        let (tx, rx) = std::sync::mpsc::channel();
        let g2 = gate.clone();
        let waiter = std::thread::spawn(move || {
            tx.send(()).unwrap();
            g2.close_and_drain(Duration::from_secs(600))
        });
        rx.recv().unwrap();
        drop(inside);
        assert!(waiter.join().unwrap());
        // A new job after the halt never gets in.
        let (tx, rx) = std::sync::mpsc::channel();
        let g3 = gate.clone();
        std::thread::spawn(move || {
            let _in = g3.enter();
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
