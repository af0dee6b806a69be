//! `pca prune-keys`: which HSM key pairs renewal left behind may be destroyed. A pair labelled
//! for one of the device's generations ([`super::key_label_for`]) is destroyed only when every
//! certificate carrying its public key is expired or revoked, it is not the key of the device's
//! CURRENT certificate, and no issuance of the device is open. A key no certificate carries is
//! kept (it may belong to an issuance in flight).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::pca::csr::cert_facts;
use crate::pca::registry::{CertStatus, DeviceState, IntentState};

/// The verdict on one key pair.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Destroy it.
    Prune,
    /// Keep it, for this reason.
    Keep(&'static str),
}

/// Decides for a key whose DER SubjectPublicKeyInfo is `spki`.
pub fn verdict(st: &DeviceState, spki: &[u8], now: OffsetDateTime) -> Verdict {
    if st.intents.iter().any(|i| i.state != IntentState::Issued) {
        return Verdict::Keep("the device has an issuance in progress");
    }
    let carries = |c: &crate::pca::registry::CertRecord| {
        c.cert_pem
            .as_deref()
            .and_then(|p| cert_facts(p).ok())
            .is_some_and(|f| f.spki == spki)
    };
    let certs: Vec<_> = st.history.iter().filter(|c| carries(c)).collect();
    if certs.is_empty() {
        return Verdict::Keep("no recorded certificate carries it");
    }
    let current = st.current.as_ref().map(|c| c.generation);
    if certs.iter().any(|c| Some(c.generation) == current) {
        return Verdict::Keep("it is the key of the device's current certificate");
    }
    let valid = certs.iter().any(|c| {
        c.status != CertStatus::Revoked
            && OffsetDateTime::parse(&c.not_after, &Rfc3339).map_or(true, |na| na > now)
    });
    if valid {
        return Verdict::Keep("a certificate carrying it is still valid");
    }
    Verdict::Prune
}
