//! `pca decommission`: a device leaves the fleet — its current certificate revoked, its HSM key
//! pair destroyed (when the HSM holds it), and the device marked DECOMMISSIONED so that
//! `provision` refuses it unless `--recommission`.
//!
//! Order, and why (each step is idempotent, so a rerun after a crash anywhere finishes the job):
//!
//! 1. **Marker IN_PROGRESS** (`DEVICE#<id>`/`DECOMMISSIONED`, conditional put). First, because it
//!    closes the door: from here `provision` claims no new intent for the device, so the
//!    certificate revoked in step 2 is the last one. Refused (nothing written) while an issuance
//!    of the device is unfinished.
//! 2. **Revoke** the current certificate ([`crate::pca::revoke::revoke`]: AWS first, registry
//!    second; a rerun gets `RequestAlreadyProcessed` and records it). Before the key step: the
//!    certificate is what relying parties trust, so it stops being trusted even if the HSM step
//!    then fails (token absent, wrong PIN) — never a destroyed key with a still-valid certificate
//!    left for an operator to chase.
//! 3. **Destroy the HSM key pair** labelled `device-<id>` if the token holds it and it is the
//!    certified key (a different key under that label is kept, with a warning). A device-generated
//!    key lives on the device: nothing to destroy here.
//! 4. **Marker DONE**. Last, so that any earlier crash leaves IN_PROGRESS and a rerun redoes the
//!    remaining steps (with the reason stored in step 1).

use std::future::Future;

use crate::error::{Error, Result};
use crate::hsm::keygen::destroy_keys;
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::aws::AwsClients;
use crate::pca::csr::cert_facts;
use crate::pca::ids::{DeviceId, Serial};
use crate::pca::registry::{CertStatus, IntentState, Registry, Written};

/// What happened to the device's HSM key pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFate {
    /// Destroyed now (this many objects).
    Destroyed(usize),
    /// The token holds no key with the device's label (already destroyed, or device-generated).
    Absent,
    /// A key with the label exists but is not the certified one: kept.
    KeptNotCertified,
    /// No HSM module configured: not looked up (a device-generated key stays on the device).
    NotLookedUp,
}

/// The result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decommissioned {
    /// The device.
    pub device_id: String,
    /// The reason (AWS enum name).
    pub reason: String,
    /// The certificate revoked by this run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_serial: Option<String>,
    /// The HSM key.
    pub key: KeyFate,
    /// False if it was already DONE (nothing to do).
    pub changed: bool,
}

/// Decommissions `device` (see the module docs for the order). `destroy_key` is the HSM step:
/// given the device and the certified public key (DER SPKI of its last certificate, if any).
pub async fn decommission<F, Fut>(
    clients: &AwsClients,
    registry: &Registry,
    device: &DeviceId,
    reason: &str,
    destroy_key: F,
) -> Result<Decommissioned>
where
    F: FnOnce(DeviceId, Option<Vec<u8>>) -> Fut,
    Fut: Future<Output = Result<KeyFate>>,
{
    let st = registry.device(device).await?;
    let reason = match &st.decommissioned {
        Some(d) if d.done => {
            return Ok(Decommissioned {
                device_id: device.to_string(),
                reason: d.reason.clone(),
                revoked_serial: None,
                key: KeyFate::Absent,
                changed: false,
            })
        }
        Some(d) => d.reason.clone(),
        None => {
            if st.items == 0 {
                return Err(Error::input(format!(
                    "device {device} is not in registry table '{}'",
                    registry.table()
                )));
            }
            refuse_open_intent(device, &st)?;
            if registry.put_decommission(device, reason).await? == Written::ConditionFailed {
                tracing::info!(device = %device, "another run started decommissioning the device");
            }
            crash_point!("after-decommission-mark");
            reason.to_string()
        }
    };
    // Read again: the state after the marker is what gets revoked.
    let st = registry.device(device).await?;
    refuse_open_intent(device, &st)?;
    let mut revoked_serial = None;
    if let Some(cur) = st
        .current
        .as_ref()
        .filter(|c| c.status == CertStatus::Issued)
    {
        let serial = Serial::parse(&cur.serial)?;
        crate::pca::revoke::revoke(clients, registry, &serial, Some(&cur.ca_arn), &reason).await?;
        revoked_serial = Some(cur.serial.clone());
    }
    let spki = st
        .history
        .iter()
        .max_by_key(|c| c.generation)
        .and_then(|c| c.cert_pem.as_deref())
        .map(cert_facts)
        .transpose()?
        .map(|f| f.spki);
    let key = destroy_key(device.clone(), spki).await?;
    crash_point!("after-key-destroyed");
    registry.finish_decommission(device).await?;
    Ok(Decommissioned {
        device_id: device.to_string(),
        reason,
        revoked_serial,
        key,
        changed: true,
    })
}

/// An unfinished issuance (an intent not ISSUED) must end first: its certificate would otherwise
/// appear after the revocation.
fn refuse_open_intent(device: &DeviceId, st: &crate::pca::registry::DeviceState) -> Result<()> {
    if let Some(i) = st.intents.iter().find(|i| i.state != IntentState::Issued) {
        let how = if st.decommissioned.is_some() {
            "rerun `hsm-demo pca decommission` once it has ended (or run `hsm-demo pca reconcile`)"
        } else {
            "finish it first (rerun `hsm-demo provision`), then decommission"
        };
        return Err(Error::Registry(format!(
            "device {device} has an unfinished issuance (generation {}, {}, since {}): {how}",
            i.generation,
            i.state.as_str(),
            i.created_at
        )));
    }
    Ok(())
}

/// The HSM step on a logged-in session: destroys the pair labelled `device-<id>` if it is the
/// certified key (`spki`; with no certificate known, any pair under the label), or half a pair.
pub fn destroy_device_key(
    session: &HsmSession,
    device: &DeviceId,
    spki: Option<&[u8]>,
) -> Result<KeyFate> {
    crate::hsm::role::refuse_token_with_ceremony_key(session)?;
    let label = device.key_label();
    let lock = TokenLock::acquire(session)?;
    let (privs, pubs) = session.find_labelled_keys(&label)?;
    if privs.is_empty() && pubs.is_empty() {
        return Ok(KeyFate::Absent);
    }
    if privs.len() == 1 && !pubs.is_empty() {
        let held = HsmSigner::new(session, &KeySpec::label(label.clone()))?.spki_der()?;
        if spki.is_some_and(|s| s != held.as_slice()) {
            eprintln!(
                "warning: device {device}: the HSM key '{label}' is not the certified key: kept"
            );
            return Ok(KeyFate::KeptNotCertified);
        }
    }
    let n = destroy_keys(session, &KeySpec::label(label), &lock)?;
    Ok(KeyFate::Destroyed(n))
}
