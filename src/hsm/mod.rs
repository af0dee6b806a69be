//! Everything that talks PKCS#11.
//!
//! Layers: [`module`] (dlopen + C_Initialize) → [`session`] (the RW session: token selection in
//! [`select`], bounded retries and the one classifier of return codes in [`retry`], [`login`], key
//! look-up in [`lookup`]) → [`signer`] (`HsmSigner`, rcgen `SigningKey`). [`pin`] gets the PIN, [`uri`]
//! parses RFC 7512 URIs, [`ec`] does curves, points and signature encodings, [`lock`] serialises
//! token-mutating calls across processes, [`repair`] removes key pairs an interrupted run left
//! broken, [`key_index`] lets a batch skip per-device token
//! searches. One file per command: [`slots`], [`keygen`], [`sign`], [`verify`]. The offline root
//! key ceremony (`src/ceremony/`) builds on this module; nothing here imports it.

pub mod digest_key;
pub mod ec;
pub mod key_index;
pub mod keygen;
pub mod lock;
pub mod login;
pub mod lookup;
pub mod module;
pub mod module_diag;
pub mod pin;
pub mod repair;
pub mod retry;
pub mod role;
pub mod select;
pub mod session;
pub mod sign;
pub mod signer;
pub mod slots;
pub mod uri;
pub mod verify;

pub use ec::Curve;
pub use lock::TokenLock;
pub use lookup::KeySpec;
pub use module::Module;
pub use pin::PinSource;
pub use session::{ConnectOptions, HsmSession};
pub use signer::HsmSigner;
pub use uri::Pkcs11Uri;
