//! `renew`: generation n+1 of a device's certificate while generation n is still valid, through
//! the same exactly-once machinery as a first issuance ([`crate::pca::issue`]).
//!
//! ```text
//!  Query DEVICE#id ── CURRENT not ISSUED ──────────────► not renewable (provision instead)
//!       │ INTENT#n+1 open ─────────────────────────────► resume it (same token), whatever is due
//!       │ policy: not due / too recent ────────────────► not-due (no write at all)
//!       ▼ due
//!  Put INTENT#n+1 (attribute_not_exists) → key → CSR → IssueCertificate → ARN → GetCertificate
//!  → ONE transaction: new SERIAL# + CERT#n+1 + CURRENT (cond: still n, ISSUED) + INTENT ISSUED
//!                     + CERT#n and SERIAL#(n) → SUPERSEDED
//!  → --revoke-superseded: RevokeCertificate(n, SUPERSEDED) → registry REVOKED
//! ```
//!
//! Keys: an HSM key rotates by default — generation n+1 gets a new pair labelled
//! [`key_label_for`] `device-<id>-g<n+1>`, generated under the intent (a rerun finds it by
//! label, so the CSR and token are the same). `--reuse-key` signs with the current key: the
//! pair whose label belongs to the earliest generation certified with the current public key
//! (generation 0's is `device-<id>`). A device with its own key sends a CSR (`--csr`). A CSR
//! carrying the old public key is refused unless `--reuse-key`; a key recorded as compromised is
//! refused by the issuance itself. Renewal never destroys a key.
//!
//! Revocation of the superseded certificate happens only after the new one is recorded; a crash
//! in between is finished by a rerun with `--revoke-superseded` (the old certificate is still
//! SUPERSEDED in the registry, and RevokeCertificate is idempotent).

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::pca::batch::Status;
use crate::pca::csr::{cert_facts, Csr, CsrRequest};
use crate::pca::device_key::KeyBinding;
use crate::pca::ids::{DeviceId, Serial};
use crate::pca::issue::{Claim, Issued, Issuer, RenewalBegin};
use crate::pca::provision::{give_up_key, DeviceKeys, DeviceRequest, KeyOutcome};
use crate::pca::registry::{CertRecord, CertStatus, DeviceState};
use crate::pca::revoke;

pub mod job;
pub mod policy;
pub mod prune;
mod subject;

pub use policy::{Decision, DueRule, Policy};

/// The HSM key label of the key generated for `generation`: `device-<id>` for the first
/// certificate (the label `provision` uses), `device-<id>-g<n>` for a key rotated in by the
/// renewal to generation n.
pub fn key_label_for(device: &DeviceId, generation: u32) -> String {
    if generation == 0 {
        device.key_label()
    } else {
        format!("{}-g{generation}", device.key_label())
    }
}

/// Where the new certificate's key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A new HSM key pair (default).
    Rotate,
    /// The current HSM key (`--reuse-key`).
    Reuse,
    /// The device's own key: this CSR (`--csr`); `reuse` allows the old public key.
    Csr {
        /// The CSR.
        csr: Box<Csr>,
        /// `--reuse-key` given.
        reuse: bool,
    },
}

/// One device to renew.
#[derive(Clone, Debug)]
pub struct RenewRequest {
    /// Device.
    pub device: DeviceId,
    /// Subject and SANs; `None`: those of the current certificate.
    pub subject: Option<CsrRequest>,
    /// Curve of a rotated key.
    pub curve: Curve,
    /// Key source.
    pub key: KeySource,
    /// Selection.
    pub policy: Policy,
    /// Revoke the superseded certificate once the new one is recorded.
    pub revoke_superseded: bool,
}

/// What happened to one device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Renewal {
    /// `issued` (renewed now), `already-present` (another runner renewed it), `not-due`.
    pub status: Status,
    /// The CURRENT certificate after the run (the new one when renewed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<Issued>,
    /// The key of the new certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyOutcome>,
    /// Its HSM label (HSM keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// Not due: when it will be (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    /// Not due because the current certificate is too recent (min-interval guard).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub too_recent: bool,
    /// Superseded serials revoked by this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
}

/// Renews one device if due (see the module documentation).
pub async fn renew_device<K: DeviceKeys>(
    issuer: &Issuer,
    keys: &mut K,
    req: &RenewRequest,
) -> Result<Renewal> {
    let now = OffsetDateTime::now_utc();
    let begin = issuer
        .begin_renewal(&req.device, |_, cur| {
            matches!(req.policy.decide(cur, now), Ok(Decision::Due))
        })
        .await?;
    let mut out = Renewal {
        status: Status::NotDue,
        issued: None,
        key: None,
        key_label: None,
        due_at: None,
        too_recent: false,
        revoked: Vec::new(),
    };
    let st = match begin {
        RenewalBegin::NotRenewable(cur) => return Err(not_renewable(&req.device, cur)),
        RenewalBegin::NotStarted(st) => {
            let st = *st;
            if let Some(cur) = &st.current {
                match req.policy.decide(cur, now)? {
                    Decision::NotDue(t) => out.due_at = Some(crate::pca::registry::rfc3339(t)),
                    Decision::TooRecent(t) => {
                        out.due_at = Some(crate::pca::registry::rfc3339(t));
                        out.too_recent = true;
                    }
                    Decision::Due => {}
                }
            }
            Some(st)
        }
        RenewalBegin::Renewed(done) => {
            out.status = Status::AlreadyPresent;
            out.issued = Some(done);
            None
        }
        RenewalBegin::Claimed(claim, st) => {
            let issued = issue_renewal(issuer, keys, req, *claim, &st, &mut out).await?;
            out.status = if issued.fresh {
                Status::Issued
            } else {
                Status::AlreadyPresent
            };
            out.issued = Some(issued);
            None
        }
    };
    if req.revoke_superseded {
        // Read again after a renewal: its record changed the device.
        let st = match st {
            Some(st) => st,
            None => issuer.registry().device(&req.device).await?,
        };
        out.revoked = revoke_superseded(issuer, &st).await?;
    }
    Ok(out)
}

fn not_renewable(device: &DeviceId, cur: Option<CertRecord>) -> Error {
    match cur {
        None => Error::input(format!(
            "device {device} has no certificate to renew: provision it first"
        )),
        Some(c) => Error::input(format!(
            "device {device}: its current certificate {} is {}: renewal needs an ISSUED one (`provision` issues a new certificate after a revocation)",
            c.serial,
            c.status.as_str()
        )),
    }
}

/// The public key (DER SPKI) of the device's current certificate.
fn current_spki(st: &DeviceState, old: &CertRecord) -> Result<Vec<u8>> {
    let pem = st
        .history
        .iter()
        .find(|h| h.generation == old.generation)
        .and_then(|h| h.cert_pem.as_deref())
        .ok_or_else(|| {
            Error::Registry(format!(
                "registry inconsistency: device {} has no certificate PEM for generation {}",
                old.device_id, old.generation
            ))
        })?;
    Ok(cert_facts(pem)?.spki)
}

/// The label of the HSM key certified by the current certificate: that of the earliest
/// generation whose certificate carries the same public key.
fn current_key_label(device: &DeviceId, st: &DeviceState, spki: &[u8]) -> String {
    let first = st
        .history
        .iter()
        .filter(|h| {
            h.cert_pem
                .as_deref()
                .and_then(|p| cert_facts(p).ok())
                .is_some_and(|f| f.spki == spki)
        })
        .map(|h| h.generation)
        .min()
        .unwrap_or(0);
    key_label_for(device, first)
}

/// Drives a claimed renewal: the key and CSR (unless the ARN is already stored), then
/// [`Issuer::complete`]. A refused key gives the claim back (nothing was sent).
async fn issue_renewal<K: DeviceKeys>(
    issuer: &Issuer,
    keys: &mut K,
    req: &RenewRequest,
    claim: Claim,
    st: &DeviceState,
    out: &mut Renewal,
) -> Result<Issued> {
    if !claim.needs_csr() {
        out.key = Some(KeyOutcome::Untouched);
        return issuer.complete(claim, None).await;
    }
    let old = claim.supersedes.as_deref().cloned().ok_or_else(|| {
        Error::Other("internal: a renewal claim without the certificate it replaces".into())
    })?;
    // A rotated key's label belongs to this generation alone, so a fresh intent's key needs no
    // search when the runner's key index does not know the label.
    let unsearched = claim.fresh && !matches!(req.key, KeySource::Reuse);
    let binding = claim.key_binding(unsearched);
    let csr = match key_csr(keys, req, &binding, &claim, st, &old, out).await {
        Ok(csr) => csr,
        Err(e) => {
            if out.key_label.is_some() {
                if let Err(de) = keys.discard(&key_request(req, out), &binding).await {
                    tracing::warn!(device = %req.device, "could not remove the key of a given-up claim: {de}");
                }
            }
            if let Err(re) = issuer.release(&claim).await {
                tracing::warn!(device = %req.device, "could not release the intent: {re}");
            }
            return Err(e);
        }
    };
    let generation = claim.intent.generation;
    match issuer.complete(claim, Some(&csr)).await {
        Ok(issued) => Ok(issued),
        Err(e) => {
            if let Some(k) = out.key {
                let kreq = key_request(req, out);
                give_up_key(issuer, keys, &kreq, &binding, (k, generation, &csr)).await;
            }
            Err(e)
        }
    }
}

/// The [`DeviceRequest`] of the HSM key a renewal used (its label as `out` recorded it), for
/// removing a given-up key.
fn key_request(req: &RenewRequest, out: &Renewal) -> DeviceRequest {
    DeviceRequest {
        key_label: out.key_label.clone().unwrap_or_default(),
        curve: req.curve,
        ..DeviceRequest::new(req.device.clone())
    }
}

/// The CSR of the new generation, its key checked against the current one.
async fn key_csr<K: DeviceKeys>(
    keys: &mut K,
    req: &RenewRequest,
    binding: &KeyBinding,
    claim: &Claim,
    st: &DeviceState,
    old: &CertRecord,
    out: &mut Renewal,
) -> Result<Csr> {
    let old_spki = current_spki(st, old)?;
    let (csr, reuse) = match &req.key {
        KeySource::Csr { csr, reuse } => ((**csr).clone(), *reuse),
        hsm => {
            let reuse = matches!(hsm, KeySource::Reuse);
            let label = if reuse {
                current_key_label(&req.device, st, &old_spki)
            } else {
                key_label_for(&req.device, claim.intent.generation)
            };
            let subject = match &req.subject {
                Some(s) => s.clone(),
                None => subject::of_certificate(st, old)?,
            };
            let dreq = DeviceRequest {
                device: req.device.clone(),
                csr: subject,
                key_label: label.clone(),
                curve: req.curve,
                device_csr: None,
            };
            out.key_label = Some(label);
            let (csr, outcome) = keys.csr_for(&dreq, binding).await?;
            out.key = Some(outcome);
            (csr, reuse)
        }
    };
    match (csr.spki == old_spki, reuse) {
        (true, false) => Err(Error::input(format!(
            "device {}: the new CSR carries the current certificate's public key: pass --reuse-key to keep the key, or use a new one",
            req.device
        ))),
        (false, true) => Err(Error::input(format!(
            "device {}: --reuse-key, but the key found ({}) is not the current certificate's",
            req.device,
            out.key_label.as_deref().unwrap_or("the CSR's")
        ))),
        _ => Ok(csr),
    }
}

/// Revokes (reason superseded) every SUPERSEDED certificate of the device: after the renewal
/// that superseded it was recorded, never before. Returns the serials revoked now.
async fn revoke_superseded(issuer: &Issuer, st: &DeviceState) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for h in st
        .history
        .iter()
        .filter(|h| h.status == CertStatus::Superseded)
    {
        let serial = Serial::parse(&h.serial)?;
        let r = revoke::revoke(
            issuer.registry().clients(),
            issuer.registry(),
            &serial,
            Some(&h.ca_arn),
            "SUPERSEDED",
        )
        .await?;
        if r.changed {
            done.push(h.serial.clone());
        }
    }
    Ok(done)
}
