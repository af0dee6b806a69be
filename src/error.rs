//! The one error type of the hsm-demo library.
//!
//! Every variant displays as ONE line (the CLI prints it as `error: <line>`). PKCS#11 failures keep
//! the failing call (`C_Login`), the CKR code name (`CKR_PIN_INCORRECT`) and a hint of what to do.
//! Nothing in here ever holds a PIN.

use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The library's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PKCS#11 call returned an error code.
    #[error("{} failed: {}: {hint}", call_name(*function), ckr_name(*rv))]
    Pkcs11 {
        /// The failing call, e.g. `Function::Login` (displayed as `C_Login`).
        function: Function,
        /// The return code, e.g. `RvError::PinIncorrect` (displayed as `CKR_PIN_INCORRECT`).
        rv: RvError,
        /// What to do about it.
        hint: String,
    },

    /// The PKCS#11 module could not be dlopen'ed.
    #[error("cannot load PKCS#11 module {}: {reason}", path.display())]
    ModuleLoad {
        /// The path that was tried.
        path: PathBuf,
        /// The dlopen reason (or "no such file").
        reason: String,
    },

    /// The library loaded but is not a PKCS#11 module.
    #[error("{} is not a PKCS#11 module: it has no C_GetFunctionList", path.display())]
    NotPkcs11Module {
        /// The path that was loaded.
        path: PathBuf,
    },

    /// No module path was given and none of the default SoftHSM2 paths exists.
    #[error("no PKCS#11 module found (tried {tried}): install softhsm2 or pass --module / HSM_DEMO_MODULE")]
    NoModule {
        /// The default paths that were tried, comma-separated.
        tried: String,
    },

    /// Token selection failed (none, several, not found, not initialised).
    #[error("{0}")]
    Token(String),

    /// The user PIN is wrong.
    #[error("C_Login failed: CKR_PIN_INCORRECT: wrong user PIN for token '{token}' (check HSM_DEMO_PIN or --pin-file)")]
    PinIncorrect {
        /// Token label.
        token: String,
    },

    /// The user PIN is locked.
    #[error("C_Login failed: CKR_PIN_LOCKED: the user PIN of token '{token}' is locked (the security officer must reset it with C_InitPIN)")]
    PinLocked {
        /// Token label.
        token: String,
    },

    /// The token's user PIN was never set.
    #[error("C_Login failed: CKR_USER_PIN_NOT_INITIALIZED: token '{token}' has no user PIN yet (set one with `softhsm2-util --init-token` or `pkcs11-tool --init-pin`)")]
    PinNotInitialised {
        /// Token label.
        token: String,
    },

    /// No PIN could be obtained, or the PIN source is unusable.
    #[error("{0}")]
    Pin(String),

    /// A key look-up matched nothing.
    #[error("no {what} found on token '{token}'")]
    KeyNotFound {
        /// Description of the search, e.g. `private key with label 'x'`.
        what: String,
        /// Token label.
        token: String,
    },

    /// A key look-up matched several objects.
    #[error("{count} objects match {what} on token '{token}': the look-up is ambiguous, select the key by id (--id) or a PKCS#11 URI with id=")]
    KeyAmbiguous {
        /// Description of the search.
        what: String,
        /// How many objects matched.
        count: usize,
        /// Token label.
        token: String,
    },

    /// The key that signed an unfinished issuance's stored CSR is not (or not yet, for this
    /// process: SoftHSM2 may not show another process's new objects at once) under its label.
    #[error("device {device}: the key that signed its unfinished issuance's CSR (digest {csr_sha256}) is not under label '{label}' on token '{token}': rerun (`--retry-failed`); if it is gone, run `hsm-demo pca reconcile --device-id {device}`")]
    StoredKeyNotFound {
        /// Device id.
        device: String,
        /// Key label.
        label: String,
        /// Token label.
        token: String,
        /// The stored CSR's digest.
        csr_sha256: String,
    },

    /// A key with that label or id already exists.
    #[error("a key with {what} already exists on token '{token}': choose another label or pass --allow-duplicate-label")]
    KeyExists {
        /// e.g. `label 'x'`.
        what: String,
        /// Token label.
        token: String,
    },

    /// A malformed RFC 7512 PKCS#11 URI.
    #[error("invalid PKCS#11 URI: {0}")]
    Uri(String),

    /// Malformed user input (hex, lengths, empty message, conflicting flags…).
    #[error("{0}")]
    Input(String),

    /// A curve or mechanism this tool does not support.
    #[error("{0}")]
    Unsupported(String),

    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `cannot read /x/y`.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A signature did not verify.
    #[error("signature verification failed")]
    VerificationFailed,

    /// Certificate building (rcgen / x509-parser).
    #[error("certificate: {0}")]
    Certificate(String),

    /// Configuration file errors (ceremony config, provisioning config…).
    #[error("{0}")]
    Config(String),

    /// Key ceremony / transcript errors.
    #[error("{0}")]
    Ceremony(String),

    /// AWS (ACM PCA, STS…) failures. `code` and `request_id` are kept when AWS answered with an
    /// error (decisions are taken on `code`, never on the message).
    #[error("{message}")]
    Aws {
        /// The one-line message.
        message: String,
        /// The service's error code (`ResourceNotFoundException`…), if AWS answered with one.
        code: Option<String>,
        /// The request id AWS gave, if the SDK had one.
        request_id: Option<String>,
    },

    /// Another live runner holds the device's unfinished issuance (its lease has not expired).
    #[error("device {device} is being issued by another runner ({owner}, lease until {lease_until}): try again later")]
    HeldByAnotherRunner {
        /// The device.
        device: String,
        /// The holder (`host:pid:start`).
        owner: String,
        /// End of the holder's lease (RFC 3339).
        lease_until: String,
    },

    /// Another runner took the device's intent over between this runner's claim and its write.
    #[error("device {device}: lost the intent to another runner; rerun to pick up its result")]
    LostIntent {
        /// The device.
        device: String,
    },

    /// Registry (DynamoDB) failures.
    #[error("{0}")]
    Registry(String),

    /// Anything else.
    #[error("{0}")]
    Other(String),

    /// A CSR's public key belongs to a certificate revoked for key-compromise.
    #[error("device {device}: the CSR's public key (SPKI SHA-256 {spki_sha256}) was revoked for key-compromise (serial {serial}) and is never certified again: use a new key (provision: destroy that key pair or pass --key-label <new label>; pca issue: a CSR for a new key)")]
    KeyCompromised {
        /// The device being issued for.
        device: String,
        /// SHA-256 of the DER SubjectPublicKeyInfo.
        spki_sha256: String,
        /// The serial revoked for key-compromise.
        serial: String,
    },

    /// A public key already certified for another device (one key, one device: two devices
    /// sharing a key is a cloning signal).
    #[error("device {device}: the CSR's public key (SPKI SHA-256 {spki_sha256}) is already certified for device {other}: one key, one device (a shared key is a cloning signal); the device needs a new key")]
    KeyInUse {
        /// The device being issued for.
        device: String,
        /// The device the key is recorded for.
        other: String,
        /// SHA-256 of the DER SubjectPublicKeyInfo.
        spki_sha256: String,
    },

    /// A device retired by `pca decommission`.
    #[error("device {device} was decommissioned ({reason}, {started_at}){more}")]
    Decommissioned {
        /// The device.
        device: String,
        /// Revocation reason.
        reason: String,
        /// When decommissioning started.
        started_at: String,
        /// What to do.
        more: String,
    },

    /// A key asked to serve a role it does not have: a key-ceremony key for an ordinary command
    /// (signing, provisioning, certifying), or an ordinary key for the ceremony.
    #[error("key '{label}' {reason}")]
    KeyRole {
        /// The key's CKA_LABEL.
        label: String,
        /// Why it is refused.
        reason: String,
    },

    /// `doctor` found broken links (its report is already printed).
    #[error("{failed} of {total} checks failed (see the lines marked ✗)")]
    ChecksFailed {
        /// Checks that failed.
        failed: usize,
        /// Checks run.
        total: usize,
    },

    /// A usage or manifest error found before anything ran: the CLI exits with status 2.
    #[error("{0}")]
    Usage(String),

    /// The run was interrupted (Ctrl-C) after its summary was printed: the CLI exits with 130.
    #[error("interrupted: rerun the same command to resume")]
    Interrupted,

    /// `pca audit-reconcile` found this many discrepancies (its report is already printed).
    #[error("{0} discrepancies between the audit report and the registry")]
    AuditDiscrepancies(usize),

    /// `pca expiring --fail-if-any` listed this many certificates: the CLI exits with 3.
    #[error("{0} certificate(s) end within the window")]
    ExpiringFound(usize),
}

impl Error {
    /// Builds an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds an [`Error::Input`].
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    /// Builds an [`Error::Aws`] without an AWS error code (a local or transport failure).
    pub fn aws(message: impl Into<String>) -> Self {
        Error::Aws {
            message: message.into(),
            code: None,
            request_id: None,
        }
    }

    /// The AWS error code if this is an AWS service error (e.g. `RequestFailedException`).
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// An [`Error::Aws`] with its message rewritten by `f`, code and request id kept; any other
    /// error is returned unchanged.
    pub fn reword_aws(self, f: impl FnOnce(&str) -> String) -> Self {
        match self {
            Error::Aws {
                message,
                code,
                request_id,
            } => Error::Aws {
                message: f(&message),
                code,
                request_id,
            },
            other => other,
        }
    }

    /// The CKR code name if this is a PKCS#11 failure (e.g. `CKR_PIN_INCORRECT`), for display;
    /// decisions use [`Self::rv`].
    pub fn ckr(&self) -> Option<&'static str> {
        self.rv().map(ckr_static_name)
    }

    /// The PKCS#11 return code if this is a PKCS#11 failure (the PIN variants included).
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Error::Pkcs11 { rv, .. } => Some(*rv),
            Error::PinIncorrect { .. } => Some(RvError::PinIncorrect),
            Error::PinLocked { .. } => Some(RvError::PinLocked),
            Error::PinNotInitialised { .. } => Some(RvError::UserPinNotInitialized),
            _ => None,
        }
    }

    /// The failing call and its return code if this is an [`Error::Pkcs11`].
    pub fn pkcs11(&self) -> Option<(Function, RvError)> {
        match self {
            Error::Pkcs11 { function, rv, .. } => Some((*function, *rv)),
            _ => None,
        }
    }

    /// The message with any line breaks folded, so it always prints as one line.
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        if s.contains(['\n', '\r']) {
            s.split(['\n', '\r'])
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            s
        }
    }
}

/// `C_Login` style name of a cryptoki [`Function`].
pub fn call_name(f: Function) -> String {
    format!("C_{f:?}")
}

/// `CKR_PIN_INCORRECT` style name of a cryptoki [`RvError`].
pub fn ckr_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(v) => format!("CKR_VENDOR_DEFINED(0x{v:08x})"),
        RvError::UnknownErrorCode(v) => format!("CKR_0x{v:08x}"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::with_capacity(camel.len() + 12);
            out.push_str("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// [`ckr_name`] with a `'static` lifetime: each distinct code is named once per process and kept
/// (a bounded set: the PKCS#11 codes a module actually returned).
fn ckr_static_name(rv: RvError) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<(RvError, &'static str)>> =
        std::sync::Mutex::new(Vec::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, n)) = names.iter().find(|(r, _)| *r == rv) {
        return n;
    }
    let n: &'static str = Box::leak(ckr_name(rv).into_boxed_str());
    names.push((rv, n));
    n
}

/// A hint of what to do for a CKR code returned by a call.
pub fn hint_for(call: Function, rv: RvError) -> &'static str {
    use RvError as R;
    match rv {
        R::PinIncorrect => "wrong user PIN (check HSM_DEMO_PIN or --pin-file)",
        R::PinLocked => "the user PIN is locked; the security officer must reset it",
        R::PinLenRange | R::PinInvalid => "the PIN has an invalid length or characters",
        R::PinExpired => "the PIN has expired and must be changed",
        R::UserPinNotInitialized => "the token has no user PIN yet; initialise it (C_InitPIN)",
        R::UserNotLoggedIn => "not logged in: a PIN is needed for this operation",
        R::UserAlreadyLoggedIn => "already logged in to this token in this process",
        R::TokenNotRecognized | R::TokenNotPresent => {
            "the token is not present or not initialised; initialise it with the module's tool (softhsm2-util --init-token, pkcs11-tool --init-token)"
        }
        R::TokenWriteProtected => "the token is write-protected",
        R::CryptokiNotInitialized => "C_Initialize was not called (internal error)",
        R::CryptokiAlreadyInitialized => {
            "the module was already initialised in this process (internal error)"
        }
        R::MechanismInvalid => "the token does not support this mechanism",
        R::CurveNotSupported | R::DomainParamsInvalid => "the token does not support this curve",
        R::KeyHandleInvalid | R::ObjectHandleInvalid => {
            "the key handle is no longer valid (was the session logged out or the key deleted?)"
        }
        R::KeyTypeInconsistent => "the key type does not fit the mechanism (is it an EC key?)",
        R::KeyFunctionNotPermitted => "the key's attributes do not allow this operation",
        R::AttributeSensitive => "the attribute is sensitive and cannot be read",
        R::DeviceError | R::DeviceMemory => {
            "the device reported an error (retried); try again later"
        }
        R::DeviceRemoved => "the device was removed",
        R::SessionCount => "the token has no free sessions",
        R::SessionReadOnly => "the session is read-only",
        R::DataLenRange => "the input has the wrong length for this key",
        R::SignatureInvalid | R::SignatureLenRange => "the signature is invalid",
        R::TemplateIncomplete | R::TemplateInconsistent => "the object template was rejected",
        R::AttributeValueInvalid | R::AttributeTypeInvalid => {
            "the token rejected an attribute in the template"
        }
        R::FunctionNotSupported => "the module does not implement this function",
        R::GeneralError | R::FunctionFailed => match call {
            Function::Initialize => "the module failed to initialise: check its configuration (e.g. SOFTHSM2_CONF and its tokendir)",
            _ => "the module gave no detail; run with -v and check the module's log/config",
        },
        R::ArgumentsBad => "the module rejected the arguments (internal error)",
        R::HostMemory => "the module ran out of memory",
        _ => "see the PKCS#11 specification for this return code",
    }
}

impl From<CkError> for Error {
    fn from(e: CkError) -> Self {
        match e {
            CkError::Pkcs11(rv, function) => Error::Pkcs11 {
                function,
                rv,
                hint: hint_for(function, rv).to_string(),
            },
            CkError::LibraryLoading(le) => Error::ModuleLoad {
                path: PathBuf::from("?"),
                reason: le.to_string(),
            },
            CkError::MissingSymbol(sym) => Error::Other(format!(
                "the PKCS#11 module is missing symbol {sym}: not a PKCS#11 module"
            )),
            CkError::PinNotSet => Error::Pin("no PIN set before login".into()),
            other => Error::Other(format!("PKCS#11 layer: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::UserPinNotInitialized),
            "CKR_USER_PIN_NOT_INITIALIZED"
        );
        assert_eq!(
            ckr_name(RvError::SessionReadWriteSoExists),
            "CKR_SESSION_READ_WRITE_SO_EXISTS"
        );
        assert_eq!(call_name(Function::Login), "C_Login");
        assert_eq!(
            call_name(Function::GetAttributeValue),
            "C_GetAttributeValue"
        );
    }

    #[test]
    fn pkcs11_error_is_one_line_with_call_code_hint() {
        let e: Error = CkError::Pkcs11(RvError::PinIncorrect, Function::Login).into();
        let s = e.to_string();
        assert!(
            s.starts_with("C_Login failed: CKR_PIN_INCORRECT: wrong user PIN"),
            "{s}"
        );
        assert!(!s.contains('\n'));
        assert_eq!(e.ckr(), Some("CKR_PIN_INCORRECT"));
    }

    #[test]
    fn pkcs11_error_keeps_the_typed_call_and_code() {
        let e: Error = CkError::Pkcs11(RvError::VendorDefined(0x8000_0001), Function::Sign).into();
        assert!(matches!(
            e.pkcs11(),
            Some((Function::Sign, RvError::VendorDefined(0x8000_0001)))
        ));
        assert_eq!(e.ckr(), Some("CKR_VENDOR_DEFINED(0x80000001)"));
        assert!(
            e.to_string()
                .starts_with("C_Sign failed: CKR_VENDOR_DEFINED(0x80000001): "),
            "{e}"
        );
        let pin = Error::PinLocked { token: "t".into() };
        assert_eq!(pin.rv(), Some(RvError::PinLocked));
        assert!(pin.pkcs11().is_none());
    }

    #[test]
    fn one_line_folds_newlines() {
        let e = Error::Other("a\nb\r\n c".into());
        assert_eq!(e.one_line(), "a; b; c");
    }
}
