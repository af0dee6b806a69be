//! Everything that talks PKCS#11.
//!
//! Layers: [`module`] (dlopen + C_Initialize) → [`session`] (token selection, RW session, login,
//! key look-up) → [`signer`] (`HsmSigner`, rcgen `SigningKey`). [`pin`] gets the PIN, [`uri`]
//! parses RFC 7512 URIs, [`ec`] does curves, points and signature encodings, [`lock`] serialises
//! token-mutating calls across processes, [`key_index`] lets a batch skip per-device token
//! searches. One file per command: [`slots`], [`keygen`], [`sign`], [`verify`], and the offline
//! root ceremony: [`ceremony`], [`ceremony_config`], [`transcript`].

pub mod ceremony;
pub mod ceremony_config;
pub mod ceremony_journal;
pub mod ec;
pub mod key_index;
pub mod keygen;
pub mod lock;
pub mod module;
pub mod module_diag;
pub mod pin;
pub mod role;
pub mod session;
pub mod sign;
pub mod signer;
pub mod slots;
pub mod transcript;
pub mod uri;
pub mod verify;

pub use ec::Curve;
pub use lock::TokenLock;
pub use module::Module;
pub use pin::PinSource;
pub use session::{ConnectOptions, HsmSession, KeySpec};
pub use signer::HsmSigner;
pub use uri::Pkcs11Uri;
