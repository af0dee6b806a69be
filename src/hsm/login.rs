//! Login: fresh token flags first (a locked or never-set user PIN is reported without calling
//! C_Login), then C_Login once, under the token's cross-process lock. Never retried: every try
//! can burn a PIN attempt.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::hsm::lock::TokenLock;
use crate::hsm::pin::PinSource;
use crate::hsm::retry::Failed;
use crate::hsm::select::TokenSummary;
use crate::hsm::session::HsmSession;

impl HsmSession {
    /// Fresh token flags before C_Login: a locked or never-set user PIN is reported without
    /// calling C_Login. Returns the token label. A flags read that says "no user PIN" on a token
    /// that had one at selection is treated like a transient selection failure by
    /// [`connect`](Self::connect) (SoftHSM2 reading a token file another process is rewriting).
    pub(crate) fn login_precheck(&self) -> std::result::Result<String, Failed> {
        let info = TokenSummary::new(
            self.token.index,
            self.slot,
            &self
                .module
                .ctx()
                .get_token_info(self.slot)
                .map_err(Error::from)?,
        );
        let token = info.label.clone();
        if info.user_pin_locked {
            return Err(Error::PinLocked { token }.into());
        }
        if !info.user_pin_initialized {
            return Err(Failed {
                error: Error::PinNotInitialised { token },
                transient: self.token.user_pin_initialized,
            });
        }
        Ok(token)
    }

    /// Logs the user in, with the PIN from `src`. Wrong, locked and uninitialised PINs each get
    /// their own error. A login already done in this process (another session) counts as success.
    /// Never retried.
    pub fn login(&mut self, src: &PinSource) -> Result<()> {
        if self.logged_in {
            return Ok(());
        }
        // Fresh flags: the token may have changed since selection.
        let token = self.login_precheck().map_err(|f| f.error)?;
        let pin = src.get(&token)?;
        self.login_with_pin(&pin)
    }

    /// Logs the user in with an explicit PIN (passed to C_Login exactly as given).
    ///
    /// Runs under the token's cross-process lock ([`TokenLock`]): SoftHSM2's C_Login rewrites the
    /// token's flags file, and a C_Login in another process reading it meanwhile failed with
    /// CKR_GENERAL_ERROR (tests/hsm_multiprocess.rs); C_Login must not be retried, so it is
    /// serialised instead (a few ms each).
    pub fn login_with_pin(&mut self, pin: &SecretString) -> Result<()> {
        let token = self.token.label.clone();
        let lock = TokenLock::acquire(self)?;
        let r = self.session.login(UserType::User, Some(pin));
        drop(lock);
        match r {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                self.logged_in = true;
                tracing::debug!(token = %token, "logged in");
                Ok(())
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Error::PinIncorrect { token }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::PinLocked { token }),
            Err(CkError::Pkcs11(RvError::UserPinNotInitialized, _)) => {
                Err(Error::PinNotInitialised { token })
            }
            Err(e) => Err(e.into()),
        }
    }
}
