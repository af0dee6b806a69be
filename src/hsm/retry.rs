//! Retry policy: which PKCS#11 return codes may clear by themselves, and the one bounded retry
//! loop (with backoff and jitter) every retry in `hsm` runs through.
//!
//! Decisions are taken on cryptoki's typed [`RvError`] and [`Function`], never on message text.

use std::time::Duration;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::error::{Error, Result};

/// Attempts for idempotent calls (token selection, sign, get-attribute, find) on a transient error.
pub const RETRY_ATTEMPTS: u32 = 6;

/// How a failed PKCS#11 call may recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The request, the key or the token state is wrong: retrying cannot help.
    Permanent,
    /// A condition that may clear by itself: the same (idempotent) call may be retried.
    Transient,
    /// The module failed without detail, or a session or object handle went stale: redoing the
    /// whole piece of work (fresh look-ups) may succeed, retrying the same call in place does not.
    Stale,
}

/// The one classifier of PKCS#11 return codes:
/// - CKR_DEVICE_ERROR / CKR_DEVICE_MEMORY: AWS CloudHSM under throttling.
/// - CKR_GENERAL_ERROR: SoftHSM2's file object store when another process rewrites a token file
///   while this one re-reads it (measured by tests/hsm_multiprocess.rs: C_GetTokenInfo during token
///   selection fails this way for ~4% of processes when 4 processes log in and generate keys at once;
///   every C_Login rewrites the token's flags file). A real, permanent general error fails the same
///   way after the last attempt, ~0.3 s later.
/// - CKR_FUNCTION_FAILED and the stale-handle codes: [`Recovery::Stale`].
pub fn classify(rv: RvError) -> Recovery {
    match rv {
        RvError::GeneralError | RvError::DeviceError | RvError::DeviceMemory => Recovery::Transient,
        RvError::FunctionFailed
        | RvError::SessionHandleInvalid
        | RvError::ObjectHandleInvalid
        | RvError::KeyHandleInvalid => Recovery::Stale,
        _ => Recovery::Permanent,
    }
}

/// Whether `rv` may clear by itself ([`Recovery::Transient`]).
pub fn is_transient(rv: RvError) -> bool {
    classify(rv) == Recovery::Transient
}

/// Whether redoing a whole piece of HSM work may succeed after `rv` (anything not permanent).
pub fn may_succeed_when_redone(rv: RvError) -> bool {
    classify(rv) != Recovery::Permanent
}

/// Whether a failure of `function` during token selection or session opening is transient: a
/// fresh C_Initialize (or a new selection pass) may make it succeed.
pub fn is_transient_selection(function: Function, rv: RvError) -> bool {
    matches!(
        function,
        Function::GetSlotList | Function::GetTokenInfo | Function::OpenSession
    ) && is_transient(rv)
}

/// Sleep before retry `attempt` (1-based): 10, 20, 40, 80, 160 ms, each plus up to 50% random jitter
/// so that processes that collided once do not collide again in lock step.
fn backoff(attempt: u32) {
    let base = 10u64 << (attempt - 1).min(5);
    let jitter = rand::random_range(0..=base / 2);
    std::thread::sleep(Duration::from_millis(base + jitter));
}

/// The bounded retry loop: runs `f` up to [`RETRY_ATTEMPTS`] times, with [`backoff`] between
/// tries, while `transient` says its error may clear; `on_retry` logs each retry.
pub fn with_backoff<T, E>(
    mut f: impl FnMut() -> std::result::Result<T, E>,
    transient: impl Fn(&E) -> bool,
    on_retry: impl Fn(&E, u32),
) -> std::result::Result<T, E> {
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if transient(&e) && attempt < RETRY_ATTEMPTS => {
                on_retry(&e, attempt);
                backoff(attempt);
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Runs an idempotent PKCS#11 call, retrying a bounded number of times ([`RETRY_ATTEMPTS`]) with
/// backoff on a transient code ([`is_transient`]). Only for calls that change nothing on the token
/// (C_GetSlotList, C_GetTokenInfo, C_FindObjects*, C_GetAttributeValue, C_Sign — cryptoki runs
/// C_SignInit + C_Sign and C_FindObjectsInit/…/Final as one unit, so a retry starts clean).
/// Never use it for C_Login (every try can burn a PIN attempt) nor for C_GenerateKeyPair (a failure
/// may still have created objects: look up by label and clean up instead, see `hsm::keygen`).
pub fn retry_idempotent<T>(f: impl FnMut() -> cryptoki::error::Result<T>) -> Result<T> {
    with_backoff(
        f,
        |e| matches!(e, CkError::Pkcs11(rv, _) if is_transient(*rv)),
        |e, attempt| {
            if let CkError::Pkcs11(rv, func) = e {
                tracing::warn!(call = ?func, code = ?rv, attempt, "retrying after a transient error");
            }
        },
    )
    .map_err(Error::from)
}

/// A failed attempt at selecting a token or logging in, and whether a fresh try may succeed.
#[derive(Debug)]
pub struct Failed {
    /// The error reported if no retry is left.
    pub error: Error,
    /// Whether a fresh try may succeed.
    pub transient: bool,
}

impl From<Error> for Failed {
    /// A transient code from C_GetSlotList / C_GetTokenInfo / C_OpenSession counts as transient
    /// ([`is_transient_selection`]).
    fn from(error: Error) -> Self {
        let transient = error
            .pkcs11()
            .is_some_and(|(function, rv)| is_transient_selection(function, rv));
        Failed { error, transient }
    }
}

/// Runs one selection attempt `f` until it succeeds, fails for good or [`RETRY_ATTEMPTS`] are
/// spent; `how` says in the log what each retry does (e.g. "retrying with a fresh C_Initialize").
pub fn retry_selection<T>(
    how: &str,
    f: impl FnMut() -> std::result::Result<T, Failed>,
) -> Result<T> {
    with_backoff(
        f,
        |f| f.transient,
        |f, attempt| {
            tracing::warn!(
                attempt,
                "token selection failed transiently ({}); {how}",
                f.error.one_line()
            )
        },
    )
    .map_err(|f| f.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_recovery() {
        assert_eq!(classify(RvError::DeviceError), Recovery::Transient);
        assert_eq!(classify(RvError::KeyHandleInvalid), Recovery::Stale);
        assert_eq!(classify(RvError::PinIncorrect), Recovery::Permanent);
        assert!(may_succeed_when_redone(RvError::FunctionFailed));
        assert!(!is_transient(RvError::FunctionFailed));
        assert!(is_transient_selection(
            Function::GetTokenInfo,
            RvError::GeneralError
        ));
        assert!(!is_transient_selection(
            Function::Login,
            RvError::GeneralError
        ));
    }
}
