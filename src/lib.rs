//! hsm-demo: device certificates with keys that never leave a PKCS#11 HSM.
//!
//! - [`hsm`]: PKCS#11 module loading, token selection, login, key look-up, the HSM signer
//!   (rcgen `SigningKey`), and one file per HSM command (slots, keygen, sign, verify).
//! - [`ceremony`]: the offline root CA key ceremony and its later steps (config, journal,
//!   hash-chained transcript, root certificate, intermediate signing), over [`hsm`].
//! - [`pca`]: AWS Private CA + DynamoDB: HSM-backed CSRs, idempotent crash-safe issuance, the
//!   serial registry, revocation, batch provisioning.
//! - [`cli`]: the clap command line (a thin layer over the library).
//! - [`fsutil`]: atomic file writes (temp file + rename), output-path checks, bounded reads.
//! - [`duration`]: the one parser for every duration flag.
//! - [`error`]: the one error type.

pub mod ceremony;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod fsutil;
pub mod hsm;
pub mod pca;

pub use error::{Error, Result};
