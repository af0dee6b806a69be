//! The read-write session on one token: [`HsmSession`] opens it (module, token selection in
//! [`crate::hsm::select`], retries in [`crate::hsm::retry`]) and logs in ([`crate::hsm::login`]);
//! key look-up lives in [`crate::hsm::lookup`].

use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::hsm::module::Module;
use crate::hsm::pin::PinSource;
pub use crate::hsm::retry::{is_transient, retry_idempotent, RETRY_ATTEMPTS};
use crate::hsm::retry::{retry_selection, Failed};
use crate::hsm::select::try_select;
pub use crate::hsm::select::{select_token, tokens, TokenSummary, TOKEN_ENV};

/// Environment variable selecting the PKCS#11 module path.
pub const MODULE_ENV: &str = "HSM_DEMO_MODULE";

/// How to reach a token: module, token, PIN source.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--module` / `HSM_DEMO_MODULE`; `None` = the default SoftHSM2 paths.
    pub module: Option<PathBuf>,
    /// `--token` / `HSM_DEMO_TOKEN`: label or serial; `None` = the single initialised token.
    pub token: Option<String>,
    /// Where the PIN comes from.
    pub pin: PinSource,
}

/// A read-write session on one token, optionally logged in. Owns (a share of) its module, so the
/// session is closed before `C_Finalize` runs.
#[derive(Debug)]
pub struct HsmSession {
    // Field order matters: the session closes before the module is finalized.
    pub(super) session: Session,
    pub(super) token: TokenSummary,
    pub(super) slot: Slot,
    pub(super) logged_in: bool,
    pub(super) module: Arc<Module>,
}

impl HsmSession {
    /// Loads the module, selects the token and opens a read-write session (not logged in).
    ///
    /// Token selection is retried with backoff, each time after C_Finalize and a fresh
    /// C_Initialize, when it failed transiently ([`Failed`]): several processes on
    /// one SoftHSM2 token make it fail that way (tests/hsm_multiprocess.rs). Nothing on the token
    /// changes before the session is returned, so a retry is always safe.
    pub fn open(opts: &ConnectOptions) -> Result<HsmSession> {
        Self::open_retrying(opts, |_| Ok(()))
    }

    /// Loads the module, selects the token, opens a read-write session and logs in. The selection
    /// and the token-flag check before C_Login are retried as in [`open`](Self::open); C_Login
    /// itself runs once (each try could burn a PIN attempt).
    ///
    /// One exception, measured on SoftHSM2 with 4 processes: C_Login answering
    /// CKR_USER_PIN_NOT_INITIALIZED right after C_GetTokenInfo said the user PIN is set (the module
    /// read the token file mid-rewrite). That code means no PIN was compared, so no attempt was
    /// spent: it is retried with a fresh C_Initialize like a selection failure, with the PIN
    /// obtained once. Every other C_Login answer is final.
    pub fn connect(opts: &ConnectOptions) -> Result<HsmSession> {
        let mut pin: Option<SecretString> = None;
        Self::open_retrying(opts, |s| {
            let token = s.login_precheck()?;
            let p = match &pin {
                Some(p) => p,
                None => pin.insert(opts.pin.get(&token)?),
            };
            match s.login_with_pin(p) {
                Ok(()) => Ok(()),
                Err(error @ Error::PinNotInitialised { .. }) => Err(Failed {
                    error,
                    transient: true,
                }),
                Err(error) => Err(Failed {
                    error,
                    transient: false,
                }),
            }
        })
    }

    fn open_retrying(
        opts: &ConnectOptions,
        mut check: impl FnMut(&mut HsmSession) -> std::result::Result<(), Failed>,
    ) -> Result<HsmSession> {
        // The session and module of a failed attempt are dropped before the next one
        // (C_CloseSession, C_Finalize), so each retry starts with a fresh C_Initialize.
        retry_selection("retrying with a fresh C_Initialize", || {
            let module =
                Arc::new(
                    Module::load(opts.module.as_deref()).map_err(|error| Failed {
                        error,
                        transient: false,
                    })?,
                );
            let (slot, token) = try_select(&module, opts.token.as_deref())?;
            let mut s = Self::open_slot(module, slot, token)?;
            check(&mut s).map(|()| s)
        })
    }

    /// Opens a read-write session on an already loaded module (e.g. one session per thread).
    /// The module is shared, so it cannot be re-initialised: the selection is retried in place
    /// (enough for modules whose transient errors clear, e.g. CloudHSM's CKR_DEVICE_ERROR).
    pub fn open_on(module: Arc<Module>, token: Option<&str>) -> Result<HsmSession> {
        let (slot, token) = retry_selection("retrying", || try_select(&module, token))?;
        Self::open_slot(module, slot, token)
    }

    fn open_slot(module: Arc<Module>, slot: Slot, token: TokenSummary) -> Result<HsmSession> {
        let session = module.ctx().open_rw_session(slot)?;
        tracing::debug!(token = %token.label, serial = %token.serial, "opened RW session");
        Ok(HsmSession {
            session,
            token,
            slot,
            logged_in: false,
            module,
        })
    }

    /// Whether this session has logged in.
    pub fn is_logged_in(&self) -> bool {
        self.logged_in
    }

    /// The raw cryptoki session, for operations this layer does not wrap.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The selected token.
    pub fn token(&self) -> &TokenSummary {
        &self.token
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token.label
    }

    /// The module this session runs on.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The slot (valid for this process only).
    pub fn slot(&self) -> Slot {
        self.slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_can_move_to_a_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<HsmSession>();
        assert_send::<Arc<Module>>();
    }
}
