//! `provision`: the whole flow for one device — claim → key in the HSM (created if absent, reused
//! if present) → CSR signed in the HSM → IssueCertificate → record → files.
//!
//! The intent is claimed *before* the key is generated, so two runners provisioning the same device
//! at once never both generate a key: the loser waits for the winner's result. The key carries its
//! claim's CKA_ID ([`device_key`]): a run that resumes an issuance whose CSR was stored signs with
//! exactly the key that signed it; a takeover removes the key of the claim it replaced (dead, or
//! expired before it stored a CSR) and makes its own; several keys under the label that nothing
//! recorded tells apart are an error, never a guess. A claim given up removes the key it made
//! ([`give_up_key`]).
//!
//! For batch provisioning: [`provision_device`] takes any [`DeviceKeys`] (e.g. one that hands the
//! HSM work to a worker thread owning a PKCS#11 session and awaits its reply), so the future can
//! be `Send`; [`hsm_csr`] is the synchronous HSM part for such workers.
//!
//! A key-ceremony key (a root CA key, [`crate::hsm::role`]) is never provisioned: the signers
//! refuse it, and a token holding one is refused before anything starts ([`SessionKeys::new`],
//! and the batch path's [`KeyIndex::load`]).

use std::fmt;
use std::future::Future;
use std::sync::RwLock;

use crate::error::{Error, Result};
use crate::hsm::key_index::KeyIndex;
use crate::hsm::role;
use crate::hsm::session::HsmSession;
use crate::pca::csr::Csr;
use crate::pca::device_key::{self, KeyBinding};
pub use crate::pca::device_key::{DeviceRequest, KeyOutcome};
use crate::pca::issue::{Begin, Issued, Issuer};

/// A step of the flow, reported as it happens.
#[derive(Clone, Debug)]
pub enum Step {
    /// Already provisioned: nothing to do.
    AlreadyDone {
        /// Serial.
        serial: String,
    },
    /// Intent claimed (fresh or resumed).
    Claimed {
        /// Generation.
        generation: u32,
        /// Resuming from a stored certificate ARN.
        resume_arn: Option<String>,
    },
    /// Key found or created.
    Key {
        /// Label.
        label: String,
        /// Outcome.
        outcome: KeyOutcome,
    },
    /// CSR signed in the HSM, or the device's CSR taken.
    Csr {
        /// Subject.
        subject: String,
        /// Signed in the HSM (false: the device's own CSR).
        in_hsm: bool,
    },
    /// Issued and recorded.
    Recorded {
        /// Serial.
        serial: String,
        /// Certificate ARN.
        cert_arn: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AlreadyDone { serial } => {
                write!(
                    f,
                    "already provisioned: certificate {serial} (no new issuance)"
                )
            }
            Step::Claimed {
                generation,
                resume_arn: None,
            } => write!(f, "intent recorded (generation {generation})"),
            Step::Claimed {
                resume_arn: Some(a),
                ..
            } => write!(f, "resuming from stored certificate ARN {a}"),
            Step::Key { label, outcome } => match outcome {
                KeyOutcome::Created => write!(f, "key '{label}' generated in the HSM"),
                KeyOutcome::Reused => write!(f, "key '{label}' found in the HSM, reused"),
                KeyOutcome::Regenerated => write!(
                    f,
                    "key '{label}': a pair an interrupted run left was removed, new pair generated"
                ),
                KeyOutcome::Untouched => write!(f, "key '{label}' not needed"),
                KeyOutcome::Device => write!(f, "device-generated key: no HSM key"),
            },
            Step::Csr {
                subject,
                in_hsm: true,
            } => write!(f, "CSR signed in the HSM (subject '{subject}')"),
            Step::Csr {
                subject,
                in_hsm: false,
            } => write!(
                f,
                "device CSR checked: signature verifies with its key (subject '{subject}')"
            ),
            Step::Recorded { serial, cert_arn } => {
                write!(f, "issued and recorded: serial {serial} ({cert_arn})")
            }
        }
    }
}

/// The result for one device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Provisioned {
    /// The certificate.
    #[serde(flatten)]
    pub issued: Issued,
    /// Key label.
    pub key_label: String,
    /// Key outcome.
    pub key: KeyOutcome,
}

/// The HSM half of provisioning: produce the device's CSR from its key.
pub trait DeviceKeys {
    /// Finds, creates or repairs the device key as [`device_key::plan`] says for the claim
    /// described by `binding`, and returns a CSR signed by it.
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>>;

    /// Destroys the key pair the claim described by `binding` generated (if any): the claim was
    /// given up. Returns the objects destroyed.
    fn discard(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<usize>>;
}

/// [`DeviceKeys`] for a run with no HSM: every device brings its own CSR
/// ([`DeviceRequest::device_csr`]), so asking for an HSM key is an internal error.
pub struct NoHsm;

impl DeviceKeys for NoHsm {
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        _binding: &KeyBinding,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let device = req.device.to_string();
        async move {
            Err(Error::Other(format!(
                "internal: device {device} needs an HSM key, but no HSM was opened"
            )))
        }
    }

    async fn discard(&mut self, _req: &DeviceRequest, _binding: &KeyBinding) -> Result<usize> {
        Ok(0)
    }
}

/// [`DeviceKeys`] on a logged-in session owned by the caller (single-device CLI use).
pub struct SessionKeys<'a>(&'a HsmSession);

impl<'a> SessionKeys<'a> {
    /// Device keys on `session`'s token, which must hold no key-ceremony key: provisioning
    /// refuses a token with a root CA key on it (one search per key class, before any AWS call).
    pub fn new(session: &'a HsmSession) -> Result<SessionKeys<'a>> {
        role::refuse_token_with_ceremony_key(session)?;
        Ok(SessionKeys(session))
    }
}

impl DeviceKeys for SessionKeys<'_> {
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let r = hsm_csr_locked(self.0, req, None, binding);
        async move { r }
    }

    fn discard(
        &mut self,
        req: &DeviceRequest,
        binding: &KeyBinding,
    ) -> impl Future<Output = Result<usize>> {
        let r = device_key::discard(self.0, req, binding);
        async move { r }
    }
}

/// The device key (found, generated or repaired: [`device_key::key_and_csr`]) and the CSR it
/// signs in the HSM. Synchronous: run it on the thread that owns the session.
///
/// `store` serialises the workers of one batch process on one token: key look-up and generation
/// hold it for writing, CSR signing for reading. SoftHSM2's file object store was seen failing
/// concurrent C_GenerateKeyPair calls from two threads (CKR_GENERAL_ERROR, leaving an unlabelled
/// private key behind) and reads racing a write (CKR_ATTRIBUTE_VALUE_INVALID); signing in
/// parallel is fine. It also guards the [`KeyIndex`] of the labels on the token: with
/// [`KeyBinding::unsearched`] and a label absent from it, the key is generated without
/// searching the token (see [`crate::hsm::key_index`]).
pub fn hsm_csr_locked(
    session: &HsmSession,
    req: &DeviceRequest,
    store: Option<&RwLock<KeyIndex>>,
    binding: &KeyBinding,
) -> Result<(Csr, KeyOutcome)> {
    req.csr.validate()?;
    device_key::key_and_csr(session, req, binding, store)
}

/// Provisions one device: idempotent, resumable, safe with concurrent runners.
pub async fn provision_device<K: DeviceKeys>(
    issuer: &Issuer,
    keys: &mut K,
    req: &DeviceRequest,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Result<Provisioned> {
    req.csr.validate()?;
    let claim = match issuer.begin(&req.device).await? {
        Begin::Done(done) => {
            issuer.check_done_matches(&req.device, &done, req.device_csr.as_ref())?;
            on_step(&Step::AlreadyDone {
                serial: done.record.serial.clone(),
            });
            return Ok(Provisioned {
                issued: done,
                key_label: req.key_label.clone(),
                key: KeyOutcome::Untouched,
            });
        }
        Begin::Claimed(c) => c,
    };
    on_step(&Step::Claimed {
        generation: claim.intent.generation,
        resume_arn: claim.intent.cert_arn.clone(),
    });
    let (csr, key) = if let Some(csr) = req.device_csr.as_ref() {
        on_step(&Step::Key {
            label: req.key_label.clone(),
            outcome: KeyOutcome::Device,
        });
        on_step(&Step::Csr {
            subject: csr.subject.clone(),
            in_hsm: false,
        });
        (Some(csr.clone()), KeyOutcome::Device)
    } else if claim.needs_csr() {
        let binding = claim.key_binding(claim.never_claimed);
        match keys.csr_for(req, &binding).await {
            Ok((csr, key)) => {
                on_step(&Step::Key {
                    label: req.key_label.clone(),
                    outcome: key,
                });
                on_step(&Step::Csr {
                    subject: csr.subject.clone(),
                    in_hsm: true,
                });
                let generation = claim.intent.generation;
                return match issuer.complete(claim, Some(&csr)).await {
                    Ok(issued) => Ok(provisioned(req, issued, key, on_step)),
                    Err(e) => {
                        let made = (key, generation, &csr);
                        give_up_key(issuer, keys, req, &binding, made).await;
                        Err(e)
                    }
                };
            }
            Err(e) => {
                // The key this claim made (if any) goes before the intent: a later claim that
                // trusts an absent label never finds a leftover.
                if let Err(de) = keys.discard(req, &binding).await {
                    tracing::warn!(device = %req.device, "could not remove the key of a given-up claim: {de}");
                }
                if let Err(re) = issuer.release(&claim).await {
                    tracing::warn!(device = %req.device, "could not release the intent: {re}");
                }
                return Err(e);
            }
        }
    } else {
        (None, KeyOutcome::Untouched)
    };
    let issued = issuer.complete(claim, csr.as_ref()).await?;
    Ok(provisioned(req, issued, key, on_step))
}

fn provisioned(
    req: &DeviceRequest,
    issued: Issued,
    key: KeyOutcome,
    on_step: &mut (dyn FnMut(&Step) + Send),
) -> Provisioned {
    on_step(&Step::Recorded {
        serial: issued.record.serial.clone(),
        cert_arn: issued.record.cert_arn.clone(),
    });
    Provisioned {
        issued,
        key_label: req.key_label.clone(),
        key,
    }
}

/// After a failed [`Issuer::complete`]: removes the key pair this claim generated (`made`: the
/// outcome, the generation and the CSR it signed) when the claim's intent is gone or names
/// another CSR — nobody can resume with that key. A key another runner may still resume with
/// (the intent still stores its CSR) stays. Best effort: a leftover is removed by the next
/// claim that searches the label ([`device_key::plan`]).
pub async fn give_up_key<K: DeviceKeys>(
    issuer: &Issuer,
    keys: &mut K,
    req: &DeviceRequest,
    binding: &KeyBinding,
    made: (KeyOutcome, u32, &Csr),
) {
    let (outcome, generation, csr) = made;
    if !matches!(outcome, KeyOutcome::Created | KeyOutcome::Regenerated) {
        return;
    }
    match issuer.abandoned(&req.device, generation, csr).await {
        Ok(true) => {
            if let Err(e) = keys.discard(req, binding).await {
                tracing::warn!(device = %req.device, "could not remove the key of a given-up claim: {e}");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(device = %req.device, "could not read the registry to remove a given-up key: {e}")
        }
    }
}
