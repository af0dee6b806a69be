//! The offline root CA key ceremony and its later steps (`hsm-demo key-ceremony ...`).
//!
//! Modelled on Boulder's `cmd/ceremony`: a short orchestration over steps, one file per artifact
//! or step. The PKCS#11 work (sessions, key generation, the ceremony signer) stays in
//! [`crate::hsm`]; this module builds on it and `hsm` never imports it.
//!
//! - [`config`]: the typed, completely validated ceremony configuration (`--config FILE`).
//! - [`run`]: the key ceremony's four steps ([`run_ceremony`]), over [`root_key`] (step 2: the
//!   root key pair in the HSM, destroyed again on failure) and [`root_cert`] (step 3: the
//!   self-signed root certificate, signed in the HSM).
//! - [`journal`]: what a ceremony is about to create, so that [`recover`] (`--recover`) can undo
//!   a ceremony that was killed half-way.
//! - [`transcript`]: the hash-chained transcript sealed by the root key; [`verify`] checks a
//!   transcript file against a root certificate (`verify-transcript`).
//! - [`intermediate`] (`sign-intermediate`): signs a subordinate CA's CSR ([`csr`]) with the HSM
//!   root key and appends the step and a new seal to the transcript.
//! - [`crl`] (`key-ceremony crl`): the root's CRL revoking subordinate CA certificates, signed in
//!   the HSM ([`crl_der`] writes its DER) and recorded in the transcript.
//! - [`x509`]: certificate parsing and the small helpers every step shares.
//!
//! The root key pair carries the key-ceremony mark: CKA_ID `hsm-demo/ceremony/<ceremony id>` on
//! both halves ([`crate::hsm::role`]). Only [`crate::hsm::HsmSigner::ceremony`] signs with such a
//! key, so the ordinary commands (`sign`, `pca`, `provision`) cannot use the root.

use std::io::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A kill point for tests (`--features failpoints`): with `FAILPOINTS=<name>=return` the process
/// says `kill point <name>: waiting for SIGKILL` on stderr and stops there until the test kills
/// it, which is exactly a `kill -9` at that point; with `=return(error)` the step fails there
/// instead (an error, as from the HSM). Compiles to nothing otherwise.
macro_rules! kill_point {
    ($name:literal) => {
        fail::fail_point!($name, |arg: Option<String>| {
            if arg.as_deref() == Some("error") {
                return Err(Error::Other(format!("injected failure at {}", $name)));
            }
            eprintln!("kill point {}: waiting for SIGKILL", $name);
            loop {
                std::thread::park();
            }
        })
    };
}

pub mod config;
pub mod crl;
pub mod crl_der;
pub mod csr;
pub mod intermediate;
pub mod journal;
pub mod recover;
pub mod root_cert;
pub mod root_key;
pub mod run;
pub mod transcript;
pub mod verify;
pub mod x509;

pub use csr::{check_intermediate_csr, MIN_RSA_BITS};
pub use intermediate::{
    sign_intermediate, SignIntermediateOutcome, SignIntermediateRequest,
    DEFAULT_INTERMEDIATE_PATH_LEN, DEFAULT_INTERMEDIATE_VALIDITY, SIGN_STEPS,
};
pub use recover::{recover, Recovered};
pub use run::{
    operators_or_default, print_plan, refuse_interrupted, run_ceremony, CeremonyOutcome,
    CEREMONY_STEPS, KILL_POINTS,
};
pub use verify::verify_transcript_file;
pub use x509::{
    cert_info, fingerprint, key_identifier, random_serial, read_cert_pem, sha256_hex, spki_ec_key,
    CertInfo,
};

fn say(out: &mut dyn Write, line: impl AsRef<str>) -> Result<()> {
    writeln!(out, "{}", line.as_ref()).map_err(|e| Error::io("cannot write to stdout", e))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn now_seconds() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn cert_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Certificate(format!("{what}: {e}"))
}
