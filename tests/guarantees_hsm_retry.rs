//! `retry_idempotent`: the bounded retry of idempotent PKCS#11 calls. A transient code
//! (CKR_DEVICE_ERROR, CKR_DEVICE_MEMORY — CloudHSM throttling — and CKR_GENERAL_ERROR — SoftHSM2's
//! file store under concurrent writers) is retried up to `RETRY_ATTEMPTS` calls in all; any other
//! code fails at once, after exactly one call. Driven with a scripted call (no module needed).

use std::cell::Cell;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use hsm_demo::hsm::session::{is_transient, retry_idempotent, RETRY_ATTEMPTS};

/// A call that fails with `rv` for its first `failures` calls, then answers its call count.
fn scripted(
    rv: RvError,
    failures: u32,
    calls: &Cell<u32>,
) -> impl FnMut() -> cryptoki::error::Result<u32> + '_ {
    move || {
        calls.set(calls.get() + 1);
        if calls.get() <= failures {
            Err(CkError::Pkcs11(rv, Function::GetAttributeValue))
        } else {
            Ok(calls.get())
        }
    }
}

#[test]
fn transient_codes_are_retried_until_the_call_succeeds() {
    for rv in [
        RvError::DeviceError,
        RvError::DeviceMemory,
        RvError::GeneralError,
    ] {
        assert!(is_transient(rv), "{rv:?}");
        let calls = Cell::new(0);
        // The last allowed attempt succeeds.
        let got = retry_idempotent(scripted(rv, RETRY_ATTEMPTS - 1, &calls)).expect("succeeds");
        assert_eq!(got, RETRY_ATTEMPTS, "{rv:?}");
        assert_eq!(calls.get(), RETRY_ATTEMPTS, "{rv:?}");
    }
}

#[test]
fn a_transient_code_that_persists_fails_after_exactly_retry_attempts_calls() {
    let calls = Cell::new(0);
    let e = retry_idempotent(scripted(RvError::DeviceError, u32::MAX, &calls)).unwrap_err();
    assert_eq!(calls.get(), RETRY_ATTEMPTS);
    assert_eq!(e.ckr(), Some("CKR_DEVICE_ERROR"), "{e}");
}

#[test]
fn other_codes_fail_after_one_call() {
    for rv in [
        RvError::PinIncorrect,
        RvError::FunctionFailed,
        RvError::KeyHandleInvalid,
        RvError::OperationActive,
    ] {
        assert!(!is_transient(rv), "{rv:?}");
        let calls = Cell::new(0);
        let e = retry_idempotent(scripted(rv, u32::MAX, &calls)).unwrap_err();
        assert_eq!(calls.get(), 1, "{rv:?} was retried");
        assert!(e.ckr().is_some(), "{rv:?}: a typed PKCS#11 error: {e}");
    }
}

#[test]
fn success_at_first_is_one_call() {
    let calls = Cell::new(0);
    assert_eq!(
        retry_idempotent(scripted(RvError::DeviceError, 0, &calls)).unwrap(),
        1
    );
    assert_eq!(calls.get(), 1);
}
