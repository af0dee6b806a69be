//! `provision`: the whole flow for one device — claim → key in the HSM (created if absent, reused
//! if present) → CSR signed in the HSM → IssueCertificate → record → files.
//!
//! The intent is claimed *before* the key is generated, so two runners provisioning the same device
//! at once never both generate a key: the loser waits for the winner's result. A crash between key
//! generation and the CSR leaves a key labelled `device-<id>` that the rerun finds and reuses (the
//! look-up is by label first; several keys with that label is an error, never a guess).
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

use cryptoki::object::ObjectHandle;

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::hsm::key_index::KeyIndex;
use crate::hsm::keygen::{generate_key_locked, KeygenRequest};
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::repair::{pair_is_intact, remove_broken_pair};
use crate::hsm::role;
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::csr::{build_csr, Csr, CsrRequest};
use crate::pca::ids::DeviceId;
use crate::pca::issue::{Begin, Issued, Issuer};

/// One device to provision.
#[derive(Clone, Debug)]
pub struct DeviceRequest {
    /// Device id.
    pub device: DeviceId,
    /// Subject and SANs (`cn` defaults to the device id).
    pub csr: CsrRequest,
    /// HSM key label (default `device-<id>`).
    pub key_label: String,
    /// Curve for a new key.
    pub curve: Curve,
    /// The device's own CSR, already checked ([`crate::pca::device_csr`]): the key was generated
    /// on the device, the HSM is not used (`csr` then holds the subject the CSR carries).
    pub device_csr: Option<Csr>,
}

impl DeviceRequest {
    /// Defaults: CN = device id, label `device-<id>`, P-256.
    pub fn new(device: DeviceId) -> Self {
        DeviceRequest {
            csr: CsrRequest {
                cn: Some(device.to_string()),
                ..CsrRequest::default()
            },
            key_label: device.key_label(),
            curve: Curve::P256,
            device,
            device_csr: None,
        }
    }
}

/// What happened to the device's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOutcome {
    /// Generated now.
    Created,
    /// Found by label and reused.
    Reused,
    /// Half a key pair (an interrupted key generation) was removed and a new pair generated.
    Regenerated,
    /// Not touched (the certificate was already issued or its ARN already stored).
    Untouched,
    /// Generated on the device, which sent a CSR: no HSM key.
    Device,
}

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
                    "key '{label}': incomplete pair from an interrupted run removed, new pair generated"
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
    /// Finds (by label) or creates the device key and returns a CSR signed by it.
    /// `never_claimed`: the registry had no item for the device before this claim (see
    /// [`hsm_csr_locked`]); an implementation may use it to skip the label search.
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        never_claimed: bool,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>>;
}

/// [`DeviceKeys`] for a run with no HSM: every device brings its own CSR
/// ([`DeviceRequest::device_csr`]), so asking for an HSM key is an internal error.
pub struct NoHsm;

impl DeviceKeys for NoHsm {
    fn csr_for(
        &mut self,
        req: &DeviceRequest,
        _never_claimed: bool,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let device = req.device.to_string();
        async move {
            Err(Error::Other(format!(
                "internal: device {device} needs an HSM key, but no HSM was opened"
            )))
        }
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
        _never_claimed: bool,
    ) -> impl Future<Output = Result<(Csr, KeyOutcome)>> {
        let r = hsm_csr(self.0, req);
        async move { r }
    }
}

/// Finds the key labelled `req.key_label` (exactly one) or generates it, then builds and signs the
/// CSR in the HSM. Synchronous: run it on the thread that owns the session.
pub fn hsm_csr(session: &HsmSession, req: &DeviceRequest) -> Result<(Csr, KeyOutcome)> {
    hsm_csr_locked(session, req, None, false)
}

/// [`hsm_csr`] for several sessions of one process on one token (batch workers).
///
/// `store` serialises this process's workers: key look-up and generation hold it for writing,
/// CSR signing for reading. SoftHSM2's file object store was seen failing concurrent
/// C_GenerateKeyPair calls from two threads (CKR_GENERAL_ERROR, leaving an unlabelled private key
/// behind) and reads racing a write (CKR_ATTRIBUTE_VALUE_INVALID); signing in parallel is fine.
/// It also guards the [`KeyIndex`] of the labels on the token.
///
/// `never_claimed`: the registry showed no item at all for the device when this runner claimed
/// it (no earlier intent, record or FAILED marker). Together with a label absent from the index
/// that proves no key exists — hsm-demo only generates a device key while holding the device's
/// intent — so the key is generated without searching the token (see [`crate::hsm::key_index`]).
pub fn hsm_csr_locked(
    session: &HsmSession,
    req: &DeviceRequest,
    store: Option<&RwLock<KeyIndex>>,
    never_claimed: bool,
) -> Result<(Csr, KeyOutcome)> {
    req.csr.validate()?;
    let (signer, outcome) = device_key(session, req, store, never_claimed)?;
    let _guard = store.map(|l| l.read().unwrap_or_else(|p| p.into_inner()));
    let csr = build_csr(&req.csr, &signer)?;
    Ok((csr, outcome))
}

/// The device's key pair as a signer: generated, found (one label search) or, when an
/// interrupted run left half a pair, regenerated.
fn device_key<'s>(
    session: &'s HsmSession,
    req: &DeviceRequest,
    store: Option<&RwLock<KeyIndex>>,
    never_claimed: bool,
) -> Result<(HsmSigner<'s>, KeyOutcome)> {
    let label = &req.key_label;
    // Checked under the token lock below, so the generation itself skips the label search.
    let keygen = KeygenRequest {
        allow_duplicate_label: true,
        ..KeygenRequest::new(label.clone(), req.curve)
    };
    let mut index = store.map(|l| l.write().unwrap_or_else(|p| p.into_inner()));
    if let Some(i) = index
        .as_deref_mut()
        .filter(|i| never_claimed && !i.may_contain(label))
    {
        // Recorded first: should the generation fail and leave something behind, a retry of this
        // device searches instead of trusting the index.
        i.insert(label);
        let lock = TokenLock::acquire(session)?;
        let key = generate_key_locked(session, &keygen, &lock)?;
        return Ok((
            HsmSigner::from_generated(session, &key)?,
            KeyOutcome::Created,
        ));
    }
    // The token lock makes "absent (or half a pair)? generate" one step for every hsm-demo
    // process and thread on this host (hsm::lock).
    let lock = TokenLock::acquire(session)?;
    let (privs, pubs) = session.find_labelled_keys(label)?;
    let found = match (privs.len(), pubs.len()) {
        (0, 0) => {
            let key = generate_key_locked(session, &keygen, &lock)?;
            (
                HsmSigner::from_generated(session, &key)?,
                KeyOutcome::Created,
            )
        }
        (1, p) if p >= 1 && pair_is_intact(session, &privs, &pubs)? => (
            pair_signer(session, privs[0], &pubs, label)?,
            KeyOutcome::Reused,
        ),
        (0, _) | (1, _) => {
            // Half a key pair: a run was killed inside C_GenerateKeyPair (SoftHSM writes the two
            // objects one after the other). No CSR can have been signed with it (that needs both
            // halves), and this runner holds the device's intent, so nobody else is using it.
            // Never half of a key-ceremony pair, though (refused by remove_broken_pair).
            remove_broken_pair(session, label, &privs, &pubs, &lock)?;
            let key = generate_key_locked(session, &keygen, &lock)?;
            (
                HsmSigner::from_generated(session, &key)?,
                KeyOutcome::Regenerated,
            )
        }
        (n, _) => {
            return Err(Error::KeyAmbiguous {
                what: format!("private key with label '{label}'"),
                count: n,
                token: session.token_label().to_string(),
            })
        }
    };
    if let Some(i) = index.as_deref_mut() {
        i.insert(label);
    }
    Ok(found)
}

/// The signer for a found private key: its public key is the one with the same CKA_ID among
/// `pubs`; anything else (none or several) gets [`HsmSigner::new`]'s look-up and its errors.
fn pair_signer<'s>(
    session: &'s HsmSession,
    private: ObjectHandle,
    pubs: &[ObjectHandle],
    label: &str,
) -> Result<HsmSigner<'s>> {
    if let [public] = pubs {
        let (plabel, pid) = session.label_and_id(private)?;
        let (_, qid) = session.label_and_id(*public)?;
        if pid == qid {
            return HsmSigner::from_pair(session, private, *public, plabel, pid);
        }
    }
    HsmSigner::new(session, &KeySpec::label(label.to_string()))
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
        match keys.csr_for(req, claim.never_claimed).await {
            Ok((csr, key)) => {
                on_step(&Step::Key {
                    label: req.key_label.clone(),
                    outcome: key,
                });
                on_step(&Step::Csr {
                    subject: csr.subject.clone(),
                    in_hsm: true,
                });
                (Some(csr), key)
            }
            Err(e) => {
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
    on_step(&Step::Recorded {
        serial: issued.record.serial.clone(),
        cert_arn: issued.record.cert_arn.clone(),
    });
    Ok(Provisioned {
        issued,
        key_label: req.key_label.clone(),
        key,
    })
}
