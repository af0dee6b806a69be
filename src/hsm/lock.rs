//! A cross-process advisory lock per token, held around the operations that CHANGE the token.
//!
//! Why: several hsm-demo processes (batch provisioning, two runners on one device) share one
//! token. `generate-key` refuses a label that already exists by looking it up first; without a lock,
//! two processes can both see "absent" and both generate (measured by
//! tests/hsm_multiprocess.rs: 2–3 of 4 processes racing on one label each created a key pair).
//! Holding this lock from the look-up through C_GenerateKeyPair (and around C_DestroyObject of a
//! half key pair) makes check-then-create atomic across processes and threads on one host.
//!
//! Reads (token selection, find, sign) never take it: they are retried instead
//! (`hsm::retry::retry_idempotent`, fresh C_Initialize on a transient selection failure), so
//! signing throughput is unaffected. Uncontended, the lock costs one open + one flock (~µs).
//!
//! The lock file lives in a per-user runtime directory — `$XDG_RUNTIME_DIR/hsm-demo-locks`, else
//! `<temp dir>/hsm-demo-locks-<uid>` (mode 0700, must be ours) — never in the token store, and is
//! named by a hash of the module path, the token serial and the token label. It is `flock(2)`
//! (std's `File::lock`): released by the kernel when the holder exits or is killed, so a crash
//! never leaves it held. It is advisory and per host: other programs (pkcs11-tool) and other hosts
//! are not serialised; on a networked HSM the module's own duplicate-label rules still apply.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;

/// Held while the token is being changed; dropping it releases the lock.
#[derive(Debug)]
pub struct TokenLock {
    file: File,
    path: PathBuf,
}

impl TokenLock {
    /// Takes the exclusive lock for `session`'s token, waiting for other holders (processes or
    /// threads) to finish. NOT re-entrant: a thread holding it must pass the guard down (e.g.
    /// `hsm::keygen::generate_key_locked`) instead of locking again, or it waits for itself.
    pub fn acquire(session: &HsmSession) -> Result<TokenLock> {
        let path = lock_path(
            session.module().path(),
            &session.token().serial,
            session.token_label(),
        )?;
        Self::acquire_path(path)
    }

    /// Takes the exclusive lock on the file at `path` (created if absent).
    pub fn acquire_path(path: PathBuf) -> Result<TokenLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open the token lock {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let t = Instant::now();
                file.lock().map_err(|e| {
                    Error::io(format!("cannot lock the token lock {}", path.display()), e)
                })?;
                tracing::debug!(lock = %path.display(), waited_ms = t.elapsed().as_millis() as u64, "token lock contended");
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(
                    format!("cannot lock the token lock {}", path.display()),
                    e,
                ))
            }
        }
        Ok(TokenLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TokenLock {
    fn drop(&mut self) {
        // Closing the file releases it too; unlocking first makes the release explicit.
        let _ = self.file.unlock();
    }
}

/// The lock file for a token: `<runtime dir>/<hash(module path, serial, label)>.lock`.
pub fn lock_path(module: &Path, serial: &str, label: &str) -> Result<PathBuf> {
    let module = std::fs::canonicalize(module).unwrap_or_else(|_| module.to_path_buf());
    let mut h = Sha256::new();
    h.update(b"hsm-demo/token-lock/v1\0");
    h.update(module.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(serial.as_bytes());
    h.update([0]);
    h.update(label.as_bytes());
    let name = format!("{}.lock", &hex::encode(h.finalize())[..32]);
    Ok(lock_dir()?.join(name))
}

/// `$XDG_RUNTIME_DIR/hsm-demo-locks` or `<temp dir>/hsm-demo-locks-<uid>`, created 0700; an
/// existing one must be a real directory owned by this user and not writable by others.
pub fn lock_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() && d.is_dir() => d.join("hsm-demo-locks"),
        _ => std::env::temp_dir().join(format!("hsm-demo-locks-{}", current_uid())),
    };
    ensure_private_dir(&dir)?;
    Ok(dir)
}

#[cfg(unix)]
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the process's effective uid (Linux); elsewhere the home directory.
    std::fs::metadata("/proc/self")
        .or_else(|_| std::fs::metadata(std::env::var_os("HOME").unwrap_or_default()))
        .map(|m| m.uid())
        .unwrap_or(0)
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

#[cfg(unix)]
fn ensure_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::io(
                format!("cannot create the lock directory {}", dir.display()),
                e,
            ))
        }
    }
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::io(format!("cannot stat {}", dir.display()), e))?;
    if !m.is_dir() || m.uid() != current_uid() || m.permissions().mode() & 0o022 != 0 {
        return Err(Error::Other(format!(
            "the lock directory {} is not a private directory of this user (owner, mode or symlink): remove it or set XDG_RUNTIME_DIR",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::io(
            format!("cannot create the lock directory {}", dir.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn one_file_per_token_never_in_the_token_store() {
        let a = lock_path(Path::new("/x/libsofthsm2.so"), "s1", "pca").unwrap();
        let b = lock_path(Path::new("/x/libsofthsm2.so"), "s2", "pca").unwrap();
        let c = lock_path(Path::new("/y/libkryoptic.so"), "s1", "pca").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            lock_path(Path::new("/x/libsofthsm2.so"), "s1", "pca").unwrap()
        );
        assert_eq!(a.parent().unwrap(), lock_dir().unwrap());
    }

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let path = lock_path(
            Path::new("/test/lock"),
            &rand::random::<u64>().to_string(),
            "t",
        )
        .unwrap();
        let first = TokenLock::acquire_path(path.clone()).unwrap();
        let released = Arc::new(AtomicBool::new(false));
        let r = released.clone();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let _second = TokenLock::acquire_path(p).unwrap();
            // The first holder sets the flag before it releases: a waiter that got in early fails.
            assert!(
                r.load(Ordering::SeqCst),
                "second holder got the lock while the first held it"
            );
        });
        // A non-blocking attempt on a third descriptor must fail while the first holds it.
        let probe = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(matches!(
            probe.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        released.store(true, Ordering::SeqCst);
        drop(first);
        waiter.join().unwrap();
        let _ = std::fs::remove_file(path);
    }
}
