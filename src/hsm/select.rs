//! Token selection: tokens are chosen by label or serial (`--token` / `HSM_DEMO_TOKEN`), else the
//! single initialised token; never by slot number (SoftHSM renumbers slots after `--init-token`).
//! One pass here; [`crate::hsm::session::HsmSession::open`] retries it.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::{Slot, TokenInfo};

use crate::error::{Error, Result};
use crate::hsm::module::Module;
use crate::hsm::retry::Failed;

/// Environment variable selecting the token by label or serial.
pub const TOKEN_ENV: &str = "HSM_DEMO_TOKEN";

/// What a slot's token says about itself (trimmed strings).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenSummary {
    /// Position in `C_GetSlotList` (0-based).
    pub index: usize,
    /// The PKCS#11 slot id (changes under SoftHSM after `--init-token`: do not store it).
    pub slot_id: u64,
    /// Token label.
    pub label: String,
    /// Token manufacturer.
    pub manufacturer: String,
    /// Token model.
    pub model: String,
    /// Token serial number.
    pub serial: String,
    /// CKF_TOKEN_INITIALIZED.
    pub initialized: bool,
    /// CKF_LOGIN_REQUIRED.
    pub login_required: bool,
    /// CKF_USER_PIN_INITIALIZED.
    pub user_pin_initialized: bool,
    /// CKF_USER_PIN_LOCKED.
    pub user_pin_locked: bool,
    /// CKF_USER_PIN_COUNT_LOW: at least one wrong user PIN since the last good login.
    pub user_pin_count_low: bool,
    /// CKF_USER_PIN_FINAL_TRY: one more wrong user PIN locks it (modules that lock, e.g. kryoptic).
    pub user_pin_final_try: bool,
    /// CKF_WRITE_PROTECTED.
    pub write_protected: bool,
}

impl TokenSummary {
    pub(crate) fn new(index: usize, slot: Slot, t: &TokenInfo) -> Self {
        TokenSummary {
            index,
            slot_id: slot.id(),
            label: t.label().trim_end().to_string(),
            manufacturer: t.manufacturer_id().trim_end().to_string(),
            model: t.model().trim_end().to_string(),
            serial: t.serial_number().trim_end().to_string(),
            initialized: t.token_initialized(),
            login_required: t.login_required(),
            user_pin_initialized: t.user_pin_initialized(),
            user_pin_locked: t.user_pin_locked(),
            user_pin_count_low: t.user_pin_count_low(),
            user_pin_final_try: t.user_pin_final_try(),
            write_protected: t.write_protected(),
        }
    }

    fn describe(&self) -> String {
        format!("'{}' (serial {})", self.label, self.serial)
    }
}

/// Every slot that has a token in it, with its index in the full slot list.
///
/// Not retried in place: SoftHSM2 decides at C_Initialize whether a token's files are readable and
/// keeps that verdict (measured: five in-place retries over 0.3 s all failed the same way), so
/// [`crate::hsm::session::HsmSession::open`] retries the whole selection with a fresh C_Initialize instead.
pub fn tokens(module: &Module) -> Result<Vec<(Slot, TokenSummary)>> {
    let slots = module.ctx().get_all_slots()?;
    let mut out = Vec::new();
    for (i, slot) in slots.into_iter().enumerate() {
        match module.ctx().get_token_info(slot) {
            Ok(t) => out.push((slot, TokenSummary::new(i, slot, &t))),
            Err(CkError::Pkcs11(RvError::TokenNotPresent, _)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Selects a token by label or serial (`want`), else the single initialised token (one pass;
/// see [`crate::hsm::session::HsmSession::open`] for the retries).
pub fn select_token(module: &Module, want: Option<&str>) -> Result<(Slot, TokenSummary)> {
    try_select(module, want).map_err(|f| f.error)
}

/// One selection pass. A miss is transient only when the slot list looks inconsistent: no
/// initialised token at all (SoftHSM2 shows exactly that, one spare uninitialised slot, when
/// another process was rewriting the token's files at our C_Initialize) or an initialised token
/// without label and serial. A typo with other tokens present is not retried.
pub(crate) fn try_select(
    module: &Module,
    want: Option<&str>,
) -> std::result::Result<(Slot, TokenSummary), Failed> {
    let all = tokens(module)?;
    // Also inconsistent: a token flagged initialised that reads with neither label nor serial
    // (SoftHSM2 mid-rewrite; seen as "tokens: '' (serial )").
    let garbled = |t: &TokenSummary| t.initialized && t.label.is_empty() && t.serial.is_empty();
    choose_token(module, &all, want).map_err(|error| Failed {
        error,
        transient: !all.iter().any(|(_, t)| t.initialized) || all.iter().any(|(_, t)| garbled(t)),
    })
}

fn choose_token(
    module: &Module,
    all: &[(Slot, TokenSummary)],
    want: Option<&str>,
) -> Result<(Slot, TokenSummary)> {
    let initialised: Vec<_> = all.iter().filter(|(_, t)| t.initialized).collect();
    let listing = || {
        if initialised.is_empty() {
            "none initialised".to_string()
        } else {
            initialised
                .iter()
                .map(|(_, t)| t.describe())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match want {
        Some(w) => {
            let by_label: Vec<_> = initialised.iter().filter(|(_, t)| t.label == w).collect();
            let matches = if by_label.is_empty() {
                initialised.iter().filter(|(_, t)| t.serial == w).collect()
            } else {
                by_label
            };
            match matches.len() {
                1 => Ok((*matches[0]).clone()),
                0 => Err(Error::Token(format!(
                    "no initialised token with label or serial '{w}' in {} (tokens: {})",
                    module.path().display(),
                    listing()
                ))),
                n => Err(Error::Token(format!(
                    "{n} tokens are labelled '{w}' ({}): select one by serial with --token SERIAL",
                    matches
                        .iter()
                        .map(|(_, t)| t.describe())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
        None => match initialised.len() {
            1 => Ok(initialised[0].clone()),
            0 => Err(Error::Token(format!(
                "no initialised token in {} ({} slot(s), none initialised): create one with {}",
                module.path().display(),
                all.len(),
                init_token_hint(module.path())
            ))),
            n => Err(Error::Token(format!(
                "{n} initialised tokens ({}): choose one with --token LABEL or {TOKEN_ENV}",
                listing()
            ))),
        },
    }
}

/// The command that initialises a token on this module: SoftHSM2 has its own tool, the others
/// (kryoptic, OpenSC cards…) take pkcs11-tool; CloudHSM tokens are never initialised this way.
fn init_token_hint(module: &std::path::Path) -> String {
    let is_softhsm = module
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("softhsm"));
    if is_softhsm {
        "`softhsm2-util --init-token --free --label LABEL`".into()
    } else {
        format!(
            "`pkcs11-tool --module {} --init-token --init-pin --label LABEL` (or the vendor's tool)",
            module.display()
        )
    }
}
