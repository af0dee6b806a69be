//! Token selection, the read-write session, login, key look-up and bounded retries.
//!
//! Tokens are chosen by label or serial (`--token` / `HSM_DEMO_TOKEN`), else the single
//! initialised token; never by slot number (SoftHSM renumbers slots after `--init-token`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use secrecy::SecretString;

use crate::error::{Error, Result};
use crate::hsm::lock::TokenLock;
use crate::hsm::module::Module;
use crate::hsm::pin::PinSource;
use crate::hsm::uri::{ObjectType, Pkcs11Uri};

/// Environment variable selecting the token by label or serial.
pub const TOKEN_ENV: &str = "HSM_DEMO_TOKEN";
/// Environment variable selecting the PKCS#11 module path.
pub const MODULE_ENV: &str = "HSM_DEMO_MODULE";

/// Attempts for idempotent calls (token selection, sign, get-attribute, find) on a transient error.
pub const RETRY_ATTEMPTS: u32 = 6;

/// Codes a module returns for a condition that may clear by itself:
/// - CKR_DEVICE_ERROR / CKR_DEVICE_MEMORY: AWS CloudHSM under throttling (REFERENCE.md §1).
/// - CKR_GENERAL_ERROR: SoftHSM2's file object store when another process rewrites a token file
///   while this one re-reads it (measured by tests/hsm_multiprocess.rs: C_GetTokenInfo during token
///   selection fails this way for ~4% of processes when 4 processes log in and generate keys at once;
///   every C_Login rewrites the token's flags file). A real, permanent general error fails the same
///   way after the last attempt, ~0.3 s later.
pub fn is_transient(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::GeneralError | RvError::DeviceError | RvError::DeviceMemory
    )
}

/// Sleep before retry `attempt` (1-based): 10, 20, 40, 80, 160 ms, each plus up to 50% random jitter
/// so that processes that collided once do not collide again in lock step.
fn backoff(attempt: u32) {
    let base = 10u64 << (attempt - 1).min(5);
    let jitter = rand::random_range(0..=base / 2);
    std::thread::sleep(Duration::from_millis(base + jitter));
}

/// Runs an idempotent PKCS#11 call, retrying a bounded number of times ([`RETRY_ATTEMPTS`]) with
/// backoff on a transient code ([`is_transient`]). Only for calls that change nothing on the token
/// (C_GetSlotList, C_GetTokenInfo, C_FindObjects*, C_GetAttributeValue, C_Sign — cryptoki runs
/// C_SignInit + C_Sign and C_FindObjectsInit/…/Final as one unit, so a retry starts clean).
/// Never use it for C_Login (every try can burn a PIN attempt) nor for C_GenerateKeyPair (a failure
/// may still have created objects: look up by label and clean up instead, see `hsm::keygen`).
pub fn retry_idempotent<T>(mut f: impl FnMut() -> cryptoki::error::Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(CkError::Pkcs11(rv, func)) if is_transient(rv) && attempt < RETRY_ATTEMPTS => {
                tracing::warn!(call = ?func, code = ?rv, attempt, "retrying after a transient error");
                backoff(attempt);
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

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
    fn new(index: usize, slot: Slot, t: &TokenInfo) -> Self {
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
/// [`HsmSession::open`] retries the whole selection with a fresh C_Initialize instead.
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
/// see [`HsmSession::open`] for the retries).
pub fn select_token(module: &Module, want: Option<&str>) -> Result<(Slot, TokenSummary)> {
    try_select(module, want).map_err(|f| f.error)
}

/// A failed attempt and whether a fresh C_Initialize may make it succeed.
struct Failed {
    error: Error,
    transient: bool,
}

impl From<Error> for Failed {
    /// A transient code from C_GetSlotList / C_GetTokenInfo / C_OpenSession counts as transient.
    fn from(error: Error) -> Self {
        let transient = match &error {
            Error::Pkcs11 { call, code, .. } => {
                matches!(
                    call.as_str(),
                    "C_GetSlotList" | "C_GetTokenInfo" | "C_OpenSession"
                ) && matches!(
                    code.as_str(),
                    "CKR_GENERAL_ERROR" | "CKR_DEVICE_ERROR" | "CKR_DEVICE_MEMORY"
                )
            }
            _ => false,
        };
        Failed { error, transient }
    }
}

/// One selection pass. A miss is transient only when the slot list looks inconsistent: no
/// initialised token at all (SoftHSM2 shows exactly that, one spare uninitialised slot, when
/// another process was rewriting the token's files at our C_Initialize) or an initialised token
/// without label and serial. A typo with other tokens present is not retried.
fn try_select(
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
    session: Session,
    token: TokenSummary,
    slot: Slot,
    logged_in: bool,
    module: Arc<Module>,
}

/// Which key to look up: by label, by id, or both (never neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// CKA_LABEL.
    pub label: Option<String>,
    /// CKA_ID.
    pub id: Option<Vec<u8>>,
}

impl KeySpec {
    /// By label.
    pub fn label(l: impl Into<String>) -> Self {
        KeySpec {
            label: Some(l.into()),
            id: None,
        }
    }

    /// From a PKCS#11 URI's `object=` and `id=` (the `token=` part selects the token).
    pub fn from_uri(u: &Pkcs11Uri) -> Result<Self> {
        if u.object.is_none() && u.id.is_none() {
            return Err(Error::Uri(
                "the URI names no key: give object= and/or id=".into(),
            ));
        }
        Ok(KeySpec {
            label: u.object.clone(),
            id: u.id.clone(),
        })
    }

    /// Human description, e.g. `private key with label 'k' and id 0102`.
    pub fn describe(&self, class: ObjectClass) -> String {
        let kind = class_name(class);
        match (&self.label, &self.id) {
            (Some(l), Some(i)) => format!("{kind} with label '{l}' and id {}", hex::encode(i)),
            (Some(l), None) => format!("{kind} with label '{l}'"),
            (None, Some(i)) => format!("{kind} with id {}", hex::encode(i)),
            (None, None) => format!("{kind} (no label or id given)"),
        }
    }

    fn template(&self, class: ObjectClass) -> Result<Vec<Attribute>> {
        if self.label.is_none() && self.id.is_none() {
            return Err(Error::input("no key selected: give --label, --id or --uri"));
        }
        let mut t = vec![Attribute::Class(class)];
        if let Some(l) = &self.label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(i) = &self.id {
            t.push(Attribute::Id(i.clone()));
        }
        Ok(t)
    }
}

/// `private key` / `public key` / `certificate` …
pub fn class_name(class: ObjectClass) -> &'static str {
    if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if class == ObjectClass::PUBLIC_KEY {
        "public key"
    } else if class == ObjectClass::CERTIFICATE {
        "certificate"
    } else if class == ObjectClass::SECRET_KEY {
        "secret key"
    } else if class == ObjectClass::DATA {
        "data object"
    } else {
        "object"
    }
}

/// The object class for a URI `type=`.
pub fn class_for_type(t: ObjectType) -> ObjectClass {
    match t {
        ObjectType::Private => ObjectClass::PRIVATE_KEY,
        ObjectType::Public => ObjectClass::PUBLIC_KEY,
        ObjectType::Cert => ObjectClass::CERTIFICATE,
        ObjectType::SecretKey => ObjectClass::SECRET_KEY,
        ObjectType::Data => ObjectClass::DATA,
    }
}

impl HsmSession {
    /// Loads the module, selects the token and opens a read-write session (not logged in).
    ///
    /// Token selection is retried with backoff, each time after C_Finalize and a fresh
    /// C_Initialize, when it failed transiently (see `Failed`): several processes on
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
        let mut attempt = 1;
        loop {
            let module = Arc::new(Module::load(opts.module.as_deref())?);
            let r = try_select(&module, opts.token.as_deref())
                .and_then(|(slot, token)| Ok(Self::open_slot(module, slot, token)?))
                .and_then(|mut s| check(&mut s).map(|()| s));
            match r {
                Ok(s) => return Ok(s),
                Err(f) if f.transient && attempt < RETRY_ATTEMPTS => {
                    // The session and module of this attempt are dropped here (C_CloseSession,
                    // C_Finalize) before the next C_Initialize.
                    tracing::warn!(
                        attempt,
                        "token selection failed transiently ({}); retrying with a fresh C_Initialize",
                        f.error.one_line()
                    );
                    backoff(attempt);
                    attempt += 1;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Opens a read-write session on an already loaded module (e.g. one session per thread).
    /// The module is shared, so it cannot be re-initialised: the selection is retried in place
    /// (enough for modules whose transient errors clear, e.g. CloudHSM's CKR_DEVICE_ERROR).
    pub fn open_on(module: Arc<Module>, token: Option<&str>) -> Result<HsmSession> {
        let mut attempt = 1;
        let (slot, token) = loop {
            match try_select(&module, token) {
                Ok(v) => break v,
                Err(f) if f.transient && attempt < RETRY_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        "token selection failed transiently ({}); retrying",
                        f.error.one_line()
                    );
                    backoff(attempt);
                    attempt += 1;
                }
                Err(f) => return Err(f.error),
            }
        };
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

    /// Fresh token flags before C_Login: a locked or never-set user PIN is reported without
    /// calling C_Login. Returns the token label. A flags read that says "no user PIN" on a token
    /// that had one at selection is treated like a transient selection failure by
    /// [`connect`](Self::connect) (SoftHSM2 reading a token file another process is rewriting).
    fn login_precheck(&self) -> std::result::Result<String, Failed> {
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

    /// All objects of `class` matching `spec` (label and/or id; never an empty template).
    pub fn find_keys(&self, class: ObjectClass, spec: &KeySpec) -> Result<Vec<ObjectHandle>> {
        let t = spec.template(class)?;
        retry_idempotent(|| self.session.find_objects(&t))
    }

    /// Exactly one object of `class` matching `spec`: none or several is an error that says so.
    pub fn find_key(&self, class: ObjectClass, spec: &KeySpec) -> Result<ObjectHandle> {
        let found = self.find_keys(class, spec)?;
        match found.len() {
            1 => Ok(found[0]),
            0 => {
                let mut what = spec.describe(class);
                if !self.logged_in && class != ObjectClass::PUBLIC_KEY {
                    what.push_str(" (not logged in: private objects are hidden)");
                }
                Err(Error::KeyNotFound {
                    what,
                    token: self.token.label.clone(),
                })
            }
            count => Err(Error::KeyAmbiguous {
                what: spec.describe(class),
                count,
                token: self.token.label.clone(),
            }),
        }
    }

    /// The private and public keys labelled `label`, in ONE C_FindObjects pass (the template is
    /// the label alone; the class of each match is read afterwards). A file-backed token such as
    /// SoftHSM2 pays per object on the token for every search, so callers that need both halves
    /// of a pair use this instead of two [`Self::find_keys`] calls.
    pub fn find_labelled_keys(
        &self,
        label: &str,
    ) -> Result<(Vec<ObjectHandle>, Vec<ObjectHandle>)> {
        let t = [Attribute::Label(label.as_bytes().to_vec())];
        let found = retry_idempotent(|| self.session.find_objects(&t))?;
        let (mut privs, mut pubs) = (Vec::new(), Vec::new());
        for h in found {
            let attrs =
                retry_idempotent(|| self.session.get_attributes(h, &[AttributeType::Class]))?;
            match attrs.first() {
                Some(Attribute::Class(c)) if *c == ObjectClass::PRIVATE_KEY => privs.push(h),
                Some(Attribute::Class(c)) if *c == ObjectClass::PUBLIC_KEY => pubs.push(h),
                _ => {} // a certificate or data object with the same label: not a key
            }
        }
        Ok((privs, pubs))
    }

    /// All objects of `class` on the token (listing; never an empty template).
    pub fn find_all_of_class(&self, class: ObjectClass) -> Result<Vec<ObjectHandle>> {
        let t = [Attribute::Class(class)];
        retry_idempotent(|| self.session.find_objects(&t))
    }

    /// One byte-valued attribute (label, id, EC params, EC point …); `None` if the object lacks it.
    pub fn get_bytes(&self, obj: ObjectHandle, ty: AttributeType) -> Result<Option<Vec<u8>>> {
        let attrs = retry_idempotent(|| self.session.get_attributes(obj, &[ty]))?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Label(v)
            | Attribute::Id(v)
            | Attribute::EcParams(v)
            | Attribute::EcPoint(v)
            | Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    /// CKA_LABEL as a string (lossy), CKA_ID bytes.
    pub fn label_and_id(&self, obj: ObjectHandle) -> Result<(String, Vec<u8>)> {
        let attrs = retry_idempotent(|| {
            self.session
                .get_attributes(obj, &[AttributeType::Label, AttributeType::Id])
        })?;
        let mut label = String::new();
        let mut id = Vec::new();
        for a in attrs {
            match a {
                Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                Attribute::Id(v) => id = v,
                _ => {}
            }
        }
        Ok((label, id))
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

    #[test]
    fn key_spec_never_builds_an_empty_template() {
        let e = KeySpec::default()
            .template(ObjectClass::PRIVATE_KEY)
            .unwrap_err();
        assert!(e.to_string().contains("no key selected"));
        let t = KeySpec::label("x")
            .template(ObjectClass::PUBLIC_KEY)
            .unwrap();
        assert_eq!(t.len(), 2);
    }
}
