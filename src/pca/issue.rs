//! Idempotent, crash-safe issuance: intent → IssueCertificate → ARN stored → wait → GetCertificate
//! → ONE transaction records it.
//!
//! ```text
//!  begin(device)                                    complete(claim, csr)
//!  ─────────────                                    ────────────────────
//!  Query DEVICE#id (consistent)                     PENDING, no params: token = H(ca, id, gen, csr.tbs);
//!  CURRENT ISSUED            → Done                   SET params (cond: owner = me)      [after-intent]
//!  no INTENT#gen             → Put PENDING          IssueCertificate(token)  (terminal error → delete intent)
//!                              (attribute_not_exists)                                   [after-issue]
//!  INTENT ISSUING(arn)       → Resume               SET state=ISSUING, cert_arn        [after-arn]
//!  INTENT PENDING, holder    → wait (backoff) until waiter certificate_issued (bounded)
//!    alive and lease valid     it is done / expires GetCertificate                     [after-get-certificate]
//!  INTENT PENDING, holder    → take over (cond:     check public key == CSR's          [before-record]
//!    dead or lease expired     owner = old, token   TransactWriteItems: SERIAL marker + CERT# + CURRENT
//!                              as read)             + INTENT→ISSUED (all conditional)   [after-record]
//! ```
//!
//! A rerun after a crash at any point resumes from what the registry holds: before the ARN was
//! stored it calls IssueCertificate again with the *same* token (same CSR content, same validity
//! stored in the intent) — AWS returns the same certificate within its idempotency window; after
//! the ARN was stored it never calls IssueCertificate again.

use std::time::{Duration, Instant};

use aws_sdk_acmpca::client::Waiters;
use aws_sdk_acmpca::operation::get_certificate::{GetCertificateError, GetCertificateOutput};
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{SigningAlgorithm, Validity, ValidityPeriodType};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{map_sdk_error, AwsClients, Service};
use crate::pca::ca::CaInfo;
use crate::pca::csr::{cert_facts, Csr};
use crate::pca::device_key::{intent_key_id, KeyBinding};
use crate::pca::ids::{CaArn, DeviceId, Serial};
use crate::pca::owner;
use crate::pca::registry::{
    rfc3339, CertRecord, CertStatus, DeviceState, Intent, IntentState, IssueParams, Registry,
    Written,
};
use crate::pca::token::{idempotency_token, sha256_hex};
use crate::pca::validity::{ResolvedValidity, ValidityKind, ValiditySpec};

mod renewal;
pub use renewal::RenewalBegin;

/// Certificate template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// EndEntityClientAuthCertificate/V1 (clientAuth EKU) — devices.
    #[default]
    Client,
    /// EndEntityServerAuthCertificate/V1 (serverAuth EKU).
    Server,
    /// EndEntityCertificate/V1 (clientAuth + serverAuth).
    Plain,
}

impl Template {
    /// The AWS template ARN.
    pub fn arn(self) -> &'static str {
        match self {
            Template::Client => "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1",
            Template::Server => "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
            Template::Plain => "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
        }
    }

    /// Parses `client`, `server` or `plain`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "client" => Ok(Template::Client),
            "server" => Ok(Template::Server),
            "plain" => Ok(Template::Plain),
            other => Err(Error::input(format!(
                "unknown template '{}': expected client, server or plain",
                crate::pca::ids::printable(other)
            ))),
        }
    }
}

/// Issuance options shared by every device of a run.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    /// Template.
    pub template: Template,
    /// Validity.
    pub validity: ValiditySpec,
    /// Bound of the `certificate_issued` waiter.
    pub wait: Duration,
    /// Lease on a PENDING intent (a dead holder on another host is taken over after this).
    pub lease: Duration,
    /// How long to wait for another live runner that holds the device before giving up.
    pub peer_wait: Duration,
    /// Issue for a device `pca decommission` retired (its marker is removed first); refused
    /// otherwise.
    pub recommission: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            template: Template::Client,
            validity: ValiditySpec::Days(30),
            wait: Duration::from_secs(120),
            lease: Duration::from_secs(60),
            peer_wait: Duration::from_secs(90),
            recommission: false,
        }
    }
}

/// A claimed intent: this runner may drive it to completion.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The device.
    pub device: DeviceId,
    /// The intent as last written.
    pub intent: Intent,
    /// This claim wrote the device's first registry item: no runner ever held the device before
    /// (no earlier intent, certificate record or FAILED marker), so no hsm-demo runner can have
    /// generated its key (keys are generated only under an intent).
    pub never_claimed: bool,
    /// This claim created the intent item (no earlier claim of this generation is open).
    pub fresh: bool,
    /// The public keys of the device's recorded certificates (see [`Claim::key_binding`]).
    pub recorded_spkis: Vec<Vec<u8>>,
    /// A renewal: the device's CURRENT (ISSUED) certificate that this generation replaces. The
    /// record transaction then also requires CURRENT to still be it and marks it SUPERSEDED.
    pub supersedes: Option<Box<CertRecord>>,
}

impl Claim {
    /// Whether a CSR is still needed (`false`: IssueCertificate already returned an ARN).
    pub fn needs_csr(&self) -> bool {
        self.intent.state == IntentState::Pending
    }

    /// What the HSM side needs to find, make or repair the key of this claim
    /// ([`crate::pca::device_key`]); `unsearched`: see [`KeyBinding::unsearched`].
    pub fn key_binding(&self, unsearched: bool) -> KeyBinding {
        KeyBinding {
            own_id: intent_key_id(
                self.device.as_str(),
                self.intent.generation,
                &self.intent.owner,
            ),
            unsearched,
            stored_csr_sha256: self.intent.params.as_ref().map(|p| p.csr_sha256.clone()),
            replaced_ids: self
                .intent
                .previous_owners
                .iter()
                .map(|o| intent_key_id(self.device.as_str(), self.intent.generation, o))
                .collect(),
            recorded_spkis: self.recorded_spkis.clone(),
        }
    }
}

/// The public keys of the certificates recorded for a device (any generation, any status).
pub fn recorded_spkis(st: &DeviceState) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for pem in st.history.iter().filter_map(|c| c.cert_pem.as_deref()) {
        if let Ok(f) = cert_facts(pem) {
            if !out.contains(&f.spki) {
                out.push(f.spki);
            }
        }
    }
    out
}

/// What [`Issuer::begin`] found.
#[derive(Debug)]
pub enum Begin {
    /// The device already has its certificate (from this CA or another; check `record.ca_arn`).
    Done(Issued),
    /// This runner holds the device's intent: call [`Issuer::complete`].
    Claimed(Claim),
}

/// An issued and recorded certificate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Issued {
    /// The registry record.
    pub record: CertRecord,
    /// Certificate PEM.
    #[serde(skip)]
    pub cert_pem: String,
    /// CA chain PEM (issuing CA first, root last).
    #[serde(skip)]
    pub chain_pem: String,
    /// True if this call recorded it; false if it was already there (rerun / another runner).
    pub fresh: bool,
    /// True if this runner called IssueCertificate (false on a resume from a stored ARN).
    pub called_issue: bool,
}

/// Issues certificates from one CA into one registry table. Cheap to share (`&Issuer`) across
/// tasks: holds clients (Clone), the CA facts (loaded once) and options.
#[derive(Clone, Debug)]
pub struct Issuer {
    clients: AwsClients,
    registry: Registry,
    ca: CaInfo,
    opts: IssueOptions,
    owner: String,
}

fn now_epoch() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn conflict(msg: String) -> Error {
    Error::Registry(msg)
}

impl Issuer {
    /// Loads the CA (DescribeCertificateAuthority + its certificate) and checks the requested
    /// validity against the CA's NotAfter. No registry writes.
    pub async fn new(
        clients: &AwsClients,
        table: &str,
        ca_arn: &CaArn,
        opts: IssueOptions,
    ) -> Result<Self> {
        let ca = CaInfo::load(clients, ca_arn).await?;
        let issuer = Issuer {
            clients: clients.clone(),
            registry: Registry::new(clients, table),
            ca,
            opts,
            owner: owner::current().to_string(),
        };
        issuer.check_validity(&issuer.opts.validity.resolve(OffsetDateTime::now_utc())?)?;
        Ok(issuer)
    }

    /// The CA facts.
    pub fn ca(&self) -> &CaInfo {
        &self.ca
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The options.
    pub fn options(&self) -> &IssueOptions {
        &self.opts
    }

    fn check_validity(&self, v: &ResolvedValidity) -> Result<()> {
        if v.not_after > self.ca.not_after {
            return Err(Error::input(format!(
                "validity {} would end {} — after the CA's own NotAfter {}: choose a shorter --validity",
                self.opts.validity,
                rfc3339(v.not_after),
                rfc3339(self.ca.not_after)
            )));
        }
        Ok(())
    }

    /// Issues (or finds) the device's certificate for a CSR given up front (`pca issue --csr`).
    pub async fn issue(&self, device: &DeviceId, csr: &Csr) -> Result<Issued> {
        match self.begin(device).await? {
            Begin::Done(done) => self
                .check_done_matches(device, &done, Some(csr))
                .map(|_| done),
            Begin::Claimed(claim) => self.complete(claim, Some(csr)).await,
        }
    }

    /// Checks that an existing certificate is the one this request asks for.
    pub fn check_done_matches(
        &self,
        device: &DeviceId,
        done: &Issued,
        csr: Option<&Csr>,
    ) -> Result<()> {
        let r = &done.record;
        if r.ca_arn != self.ca.arn.as_str() {
            return Err(conflict(format!(
                "device {device} already has certificate {} from another CA ({}): revoke it before issuing from {}",
                r.serial, r.ca_arn, self.ca.arn
            )));
        }
        if let Some(csr) = csr {
            let t = idempotency_token(
                self.ca.arn.as_str(),
                device.as_str(),
                r.generation,
                &csr.tbs,
            );
            if t != r.token {
                return Err(conflict(format!(
                    "device {device} already has certificate {} for a different CSR: revoke it (`hsm-demo pca revoke --serial {}`) to issue a new one",
                    r.serial, r.serial
                )));
            }
        }
        Ok(())
    }

    fn done_from(&self, st: &DeviceState, cur: &CertRecord) -> Result<Issued> {
        let hist = st
            .history
            .iter()
            .find(|h| h.generation == cur.generation)
            .ok_or_else(|| {
                Error::Registry(format!(
                    "registry inconsistency: device {} has CURRENT generation {} but no CERT# item",
                    cur.device_id, cur.generation
                ))
            })?;
        Ok(Issued {
            record: cur.clone(),
            cert_pem: hist.cert_pem.clone().unwrap_or_default(),
            chain_pem: hist.chain_pem.clone().unwrap_or_default(),
            fresh: false,
            called_issue: false,
        })
    }

    /// Finds the device's state and claims its intent, or reports it done. Waits (bounded, with
    /// backoff) while another live runner holds the device; takes over a dead or expired holder.
    pub async fn begin(&self, device: &DeviceId) -> Result<Begin> {
        let deadline = Instant::now() + self.opts.peer_wait;
        let mut backoff = Duration::from_millis(50);
        loop {
            let st = self.registry.device(device).await?;
            if self.decommission_gate(device, &st).await? {
                continue;
            }
            if let Some(cur) = st
                .current
                .as_ref()
                .filter(|c| c.status == CertStatus::Issued)
            {
                return Ok(Begin::Done(self.done_from(&st, cur)?));
            }
            let generation = st.next_generation();
            let Some(intent) = st.intent(generation).cloned() else {
                let intent = self.new_intent(device, generation);
                match self.registry.put_intent(&intent).await? {
                    Written::Yes => {
                        return Ok(Begin::Claimed(Claim {
                            device: device.clone(),
                            intent,
                            never_claimed: st.items == 0,
                            fresh: true,
                            recorded_spkis: recorded_spkis(&st),
                            supersedes: None,
                        }))
                    }
                    Written::ConditionFailed => continue,
                }
            };
            if intent.ca_arn != self.ca.arn.as_str() {
                return Err(conflict(format!(
                    "device {device} has an unfinished issuance from another CA ({}) since {}: finish it with that CA or run `hsm-demo pca reconcile --device-id {device}`",
                    intent.ca_arn, intent.created_at
                )));
            }
            let held = match intent.state {
                IntentState::Issuing => Pending::Claimed(intent),
                IntentState::Issued => {
                    return Err(Error::Registry(format!(
                        "registry inconsistency: device {device} intent {generation} is ISSUED but CURRENT does not show it"
                    )))
                }
                IntentState::Pending => self.claim_pending(device, intent).await?,
            };
            match held {
                Pending::Claimed(intent) => {
                    return Ok(Begin::Claimed(Claim {
                        device: device.clone(),
                        intent,
                        never_claimed: false,
                        fresh: false,
                        recorded_spkis: recorded_spkis(&st),
                        supersedes: None,
                    }))
                }
                Pending::Lost => continue,
                Pending::Held(intent) if Instant::now() >= deadline => {
                    return Err(Error::HeldByAnotherRunner {
                        device: device.to_string(),
                        owner: intent.owner,
                        lease_until: rfc3339(
                            OffsetDateTime::from_unix_timestamp(intent.lease_until)
                                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        ),
                    });
                }
                Pending::Held(_) => {
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// A decommissioned device gets no new intent (an intent already open is finished: it began
    /// before the decommissioning, which a rerun of `pca decommission` then completes). With
    /// `recommission`, a finished decommissioning's marker is removed and `true` returned (read
    /// the device again).
    async fn decommission_gate(&self, device: &DeviceId, st: &DeviceState) -> Result<bool> {
        let Some(d) = &st.decommissioned else {
            return Ok(false);
        };
        if st.intent(st.next_generation()).is_some() {
            return Ok(false);
        }
        if self.opts.recommission && d.done {
            self.registry.clear_decommission(device).await?;
            return Ok(true);
        }
        let more = if d.done {
            ": pass --recommission to provision it again".to_string()
        } else {
            format!(
                ": decommissioning is unfinished; rerun `hsm-demo pca decommission --device-id {device}`"
            )
        };
        Err(Error::Decommissioned {
            device: device.to_string(),
            reason: d.reason.clone(),
            started_at: d.started_at.clone(),
            more,
        })
    }

    /// Refuses a CSR whose public key is recorded for another device (one GetItem, before any
    /// AWS Private CA call); the intent is left as [`Self::refuse_compromised_key`] leaves it.
    async fn refuse_key_of_another_device(
        &self,
        device: &DeviceId,
        intent: &Intent,
        csr: &Csr,
    ) -> Result<()> {
        let spki_sha256 = sha256_hex(&csr.spki);
        match self.registry.key_device(&spki_sha256).await? {
            Some(other) if other != device.as_str() => {
                if intent.params.is_none() {
                    if let Err(e) = self.registry.delete_intent(intent, &self.owner).await {
                        tracing::warn!(device = %device, "could not delete the refused intent: {e}");
                    }
                }
                Err(Error::KeyInUse {
                    device: device.to_string(),
                    other,
                    spki_sha256,
                })
            }
            _ => Ok(()),
        }
    }

    /// A fresh PENDING intent of this runner for `generation`.
    fn new_intent(&self, device: &DeviceId, generation: u32) -> Intent {
        let now = OffsetDateTime::now_utc();
        Intent {
            device_id: device.to_string(),
            generation,
            state: IntentState::Pending,
            ca_arn: self.ca.arn.to_string(),
            owner: self.owner.clone(),
            lease_until: now.unix_timestamp() + self.opts.lease.as_secs() as i64,
            created_at: rfc3339(now),
            created_epoch: now.unix_timestamp(),
            params: None,
            cert_arn: None,
            serial: None,
            previous_owners: Vec::new(),
        }
    }

    /// A PENDING intent: ours, taken over from a dead or expired holder, or held by a live one.
    async fn claim_pending(&self, device: &DeviceId, intent: Intent) -> Result<Pending> {
        if intent.owner == self.owner {
            return Ok(Pending::Claimed(intent));
        }
        let expired = intent.lease_until < now_epoch();
        if !expired && !owner::is_dead_local(&intent.owner) {
            return Ok(Pending::Held(intent));
        }
        let lease = now_epoch() + self.opts.lease.as_secs() as i64;
        if self
            .registry
            .take_over_intent(&intent, &self.owner, lease)
            .await?
            != Written::Yes
        {
            return Ok(Pending::Lost);
        }
        tracing::info!(
            device = %device,
            previous = %intent.owner,
            "took over an unfinished issuance"
        );
        let mut intent = intent;
        let previous = std::mem::replace(&mut intent.owner, self.owner.clone());
        intent.previous_owners.push(previous);
        intent.lease_until = lease;
        Ok(Pending::Claimed(intent))
    }

    /// Whether nobody can resume `device`'s `generation` with the key that signed `csr`: its
    /// intent is gone (and nothing recorded that generation) or stores another CSR. One
    /// consistent read; used after a failed [`Issuer::complete`] to remove that key.
    pub async fn abandoned(&self, device: &DeviceId, generation: u32, csr: &Csr) -> Result<bool> {
        let st = self.registry.device(device).await?;
        Ok(match st.intent(generation) {
            None => !st.history.iter().any(|c| c.generation == generation),
            Some(i) => i
                .params
                .as_ref()
                .is_none_or(|p| p.csr_sha256 != sha256_hex(&csr.tbs)),
        })
    }

    /// Gives a PENDING claim back (e.g. the HSM failed before IssueCertificate was called), so
    /// nothing stays recorded and another runner need not wait for the lease.
    pub async fn release(&self, claim: &Claim) -> Result<()> {
        if claim.intent.state == IntentState::Pending && claim.intent.params.is_none() {
            self.registry
                .delete_intent(&claim.intent, &self.owner)
                .await?;
        }
        Ok(())
    }

    /// Refuses a CSR whose public key was revoked for key-compromise (one GetItem, before any
    /// AWS Private CA call). An intent that has not sent anything yet (no parameters stored) is
    /// deleted, so the device is left as it was; one with parameters is kept, since an earlier
    /// attempt may have reached AWS (`pca reconcile` reports it).
    async fn refuse_compromised_key(
        &self,
        device: &DeviceId,
        intent: &Intent,
        csr: &Csr,
    ) -> Result<()> {
        let Some(k) = self
            .registry
            .compromised_key(&sha256_hex(&csr.spki))
            .await?
        else {
            return Ok(());
        };
        if intent.params.is_none() {
            if let Err(e) = self.registry.delete_intent(intent, &self.owner).await {
                tracing::warn!(device = %device, "could not delete the refused intent: {e}");
            }
        }
        Err(Error::KeyCompromised {
            device: device.to_string(),
            spki_sha256: k.spki_sha256,
            serial: k.serial,
        })
    }

    /// Drives a claim to a recorded certificate. `csr` is required while the claim is PENDING
    /// (see [`Claim::needs_csr`]); with a stored ARN it is optional (used only to cross-check the
    /// issued public key).
    ///
    /// Phases: [parameters](Self::parameters) → [submit](Self::submit) (IssueCertificate, ARN
    /// stored) → [fetch](Self::fetch) (wait + GetCertificate) → [record](Self::record).
    pub async fn complete(&self, claim: Claim, csr: Option<&Csr>) -> Result<Issued> {
        let Claim {
            device,
            mut intent,
            supersedes,
            ..
        } = claim;
        let mut called_issue = false;
        if intent.state == IntentState::Pending {
            let csr = csr.ok_or_else(|| {
                Error::Other(format!(
                    "internal: a CSR is needed to issue for device {device}"
                ))
            })?;
            self.refuse_compromised_key(&device, &intent, csr).await?;
            self.refuse_key_of_another_device(&device, &intent, csr)
                .await?;
            let params = self.parameters(&device, &intent, csr).await?;
            intent.params = Some(params.clone());
            crash_point!("after-intent");
            match self.submit(&device, intent, csr, &params).await? {
                Submitted::Issuing(i) => intent = i,
                Submitted::Recorded(done) => return Ok(done),
            }
            called_issue = true;
            crash_point!("after-arn");
        }
        let arn = intent.cert_arn.clone().ok_or_else(|| {
            Error::Registry(format!(
                "registry inconsistency: ISSUING intent of {device} has no cert_arn"
            ))
        })?;
        let (cert_pem, chain_pem) = self.fetch(&intent, &arn).await?;
        crash_point!("after-get-certificate");
        let rec = self.cert_record(&device, &intent, &arn, csr, &cert_pem, &chain_pem)?;
        crash_point!("before-record");
        self.record(
            &device,
            rec,
            supersedes.as_deref(),
            (cert_pem, chain_pem),
            called_issue,
        )
        .await
    }

    /// Parameters phase: the intent's IssueCertificate parameters — the stored ones on a resume
    /// (same CSR), or new ones written into the intent (conditional on this runner's ownership).
    async fn parameters(
        &self,
        device: &DeviceId,
        intent: &Intent,
        csr: &Csr,
    ) -> Result<IssueParams> {
        let token = idempotency_token(
            self.ca.arn.as_str(),
            device.as_str(),
            intent.generation,
            &csr.tbs,
        );
        match intent.params.clone() {
            Some(p) if p.token == token => {
                let age = now_epoch() - intent.created_epoch;
                if age > crate::pca::reconcile::IDEMPOTENCY_WINDOW.as_secs() as i64 {
                    tracing::warn!(device = %device, token = %p.token, age, "resuming beyond the idempotency window");
                    eprintln!(
                        "warning: device {device}: resuming an issuance started {age} s ago, beyond AWS's idempotency window; if that attempt reached AWS, its certificate (token {}) is not recorded — see `hsm-demo pca reconcile`",
                        p.token
                    );
                }
                Ok(p)
            }
            Some(p) => Err(conflict(format!(
                "device {device} has an unfinished issuance for a different CSR (token {}, since {}): it may have been issued; run `hsm-demo pca reconcile --device-id {device}`",
                p.token, intent.created_at
            ))),
            None => {
                let v = self.opts.validity.resolve(OffsetDateTime::now_utc())?;
                self.check_validity(&v)?;
                let p = IssueParams {
                    token,
                    csr_sha256: sha256_hex(&csr.tbs),
                    template_arn: self.opts.template.arn().to_string(),
                    signing_algorithm: self.ca.signing_algorithm.as_str().to_string(),
                    validity_type: v.kind.as_str().to_string(),
                    validity_value: v.value,
                };
                match self.registry.set_intent_params(intent, &self.owner, &p).await? {
                    Written::Yes => Ok(p),
                    Written::ConditionFailed => {
                        let _ = self.registry.delete_intent(intent, &self.owner).await;
                        Err(Error::LostIntent {
                            device: device.to_string(),
                        })
                    }
                }
            }
        }
    }

    /// Submit phase: IssueCertificate, then the returned ARN stored in the intent (ISSUING). A
    /// rejected request deletes the intent; an unknown outcome keeps it for a resume.
    async fn submit(
        &self,
        device: &DeviceId,
        mut intent: Intent,
        csr: &Csr,
        params: &IssueParams,
    ) -> Result<Submitted> {
        let arn = match self.issue_certificate(csr, params).await {
            Ok(a) => a,
            Err(IssueFailure::Rejected(e)) => {
                // AWS answered with a 4xx: it issued nothing for this request. Leave nothing
                // recorded.
                if let Err(de) = self.registry.delete_intent(&intent, &self.owner).await {
                    tracing::warn!(device = %device, "could not delete the failed intent: {de}");
                }
                return Err(e);
            }
            Err(IssueFailure::Unknown(e)) => {
                // A timeout, dropped connection or 5xx after the last retry: AWS may have issued.
                // Keep the intent (with its token) so a rerun resends the same token, and `pca
                // reconcile` sees it if the rerun comes too late.
                tracing::warn!(device = %device, token = %params.token, "IssueCertificate outcome unknown; intent kept for resume");
                return Err(e);
            }
        };
        crash_point!("after-issue");
        match self
            .registry
            .set_intent_issuing(&intent, &params.token, &arn)
            .await?
        {
            Written::Yes => intent.cert_arn = Some(arn),
            // Another runner stored an ARN (or finished) meanwhile.
            Written::ConditionFailed => {
                let generation = intent.generation;
                match self
                    .reread_after_conflict(device, |c| {
                        c.generation == generation && c.status == CertStatus::Issued
                    })
                    .await?
                {
                    Reread::Recorded(done) => {
                        if done.record.cert_arn != arn {
                            self.warn_duplicate(device, &arn, &done.record.cert_arn);
                        }
                        return Ok(Submitted::Recorded(done));
                    }
                    Reread::Open(st) => match st.intent(generation) {
                        Some(i) if i.cert_arn.is_some() => {
                            let other = i.cert_arn.clone().unwrap_or_default();
                            if other != arn {
                                self.warn_duplicate(device, &arn, &other);
                            }
                            intent = i.clone();
                        }
                        _ => {
                            return Err(conflict(format!(
                                "device {device}: the intent changed while issuing (certificate {arn} may be orphaned)"
                            )))
                        }
                    },
                }
            }
        }
        intent.state = IntentState::Issuing;
        Ok(Submitted::Issuing(intent))
    }

    /// Fetch phase: waits for the certificate and gets it. A terminal failure (no certificate
    /// will ever exist for this ARN) frees the device's slot.
    async fn fetch(&self, intent: &Intent, arn: &str) -> Result<(String, String)> {
        match self.wait_and_get(arn).await {
            Ok(x) => Ok(x),
            Err(FetchFailure::Terminal(e)) => {
                // RequestFailed: no certificate exists for this ARN; free the slot.
                let _ = self.registry.delete_intent(intent, &intent.owner).await;
                Err(e)
            }
            Err(FetchFailure::Retryable(e)) => Err(e),
        }
    }

    /// The record of a fetched certificate (checked against the CSR's public key, if given).
    fn cert_record(
        &self,
        device: &DeviceId,
        intent: &Intent,
        arn: &str,
        csr: Option<&Csr>,
        cert_pem: &str,
        chain_pem: &str,
    ) -> Result<CertRecord> {
        let facts = cert_facts(cert_pem)?;
        if let Some(csr) = csr {
            if facts.spki != csr.spki {
                return Err(Error::Certificate(format!(
                    "certificate {arn} does not carry the CSR's public key"
                )));
            }
        }
        let params = intent.params.as_ref();
        Ok(CertRecord {
            device_id: device.to_string(),
            generation: intent.generation,
            serial: Serial::from_bytes(&facts.serial).to_string(),
            ca_arn: self.ca.arn.to_string(),
            cert_arn: arn.to_string(),
            status: CertStatus::Issued,
            not_before: rfc3339(facts.not_before),
            not_after: rfc3339(facts.not_after),
            issued_at: rfc3339(OffsetDateTime::now_utc()),
            revoked_at: None,
            revocation_reason: None,
            token: params.map(|p| p.token.clone()).unwrap_or_default(),
            template_arn: params
                .map(|p| p.template_arn.clone())
                .unwrap_or_else(|| self.opts.template.arn().to_string()),
            cert_pem: Some(cert_pem.to_string()),
            chain_pem: Some(chain_pem.to_string()),
            recorded_by: Some(self.owner.clone()),
        })
    }

    /// Record phase: ONE conditional transaction (serial marker, certificate, CURRENT, intent
    /// ISSUED). On a condition failure the registry is re-read: the same certificate recorded
    /// (by another runner, or by our own retried write) is success; anything else is refused.
    async fn record(
        &self,
        device: &DeviceId,
        rec: CertRecord,
        supersedes: Option<&CertRecord>,
        (cert_pem, chain_pem): (String, String),
        called_issue: bool,
    ) -> Result<Issued> {
        // One key, one device: the key's DEVICE item is written in the same transaction.
        let key = sha256_hex(&cert_facts(&cert_pem)?.spki);
        #[allow(unused_mut)]
        let mut written = match supersedes {
            Some(old) => self.record_renewal(&rec, old, &key).await?,
            None => {
                self.registry
                    .record_issued_with_key(&rec, Some(&key))
                    .await?
            }
        };
        // Test-only: the transaction committed but its answer was lost, so the SDK's retry sees
        // our own write as a condition failure (seen against a slow stand-in).
        #[cfg(feature = "failpoints")]
        if written == Written::Yes && fail::eval("record-answer-lost", |_| ()).is_some() {
            written = self
                .registry
                .record_issued_with_key(&rec, Some(&key))
                .await?;
        }
        if written == Written::Yes {
            crash_point!("after-record");
            return Ok(Issued {
                record: rec,
                cert_pem,
                chain_pem,
                fresh: true,
                called_issue,
            });
        }
        match self
            .reread_after_conflict(device, |c| {
                c.generation == rec.generation && c.serial == rec.serial
            })
            .await?
        {
            Reread::Recorded(mut done) => {
                done.called_issue = called_issue;
                // Either another runner recorded the same certificate (it took the intent over
                // and got the same ARN for the same token), or the SDK retried our transaction
                // after a lost answer and its first attempt had committed: the record's writer
                // tells which.
                done.fresh = done.record.recorded_by.as_deref() == Some(self.owner.as_str());
                Ok(done)
            }
            Reread::Open(_) => {
                if let Some(other) = self
                    .registry
                    .key_device(&key)
                    .await?
                    .filter(|o| o != device.as_str())
                {
                    return Err(Error::KeyInUse {
                        device: device.to_string(),
                        other,
                        spki_sha256: key,
                    });
                }
                let markers = self
                    .registry
                    .by_serial(&Serial::parse(&rec.serial)?)
                    .await?;
                if let Some(m) = markers.iter().find(|m| m.ca_arn == rec.ca_arn) {
                    Err(Error::Registry(format!(
                        "serial {} of CA {} is already recorded for device {}: not recording it for {device}",
                        rec.serial, rec.ca_arn, m.device_id
                    )))
                } else {
                    Err(Error::Registry(format!(
                        "could not record certificate {} for device {device}: the registry changed meanwhile; rerun",
                        rec.serial
                    )))
                }
            }
        }
    }

    /// After a conditional write lost to another writer: re-reads the device (consistently) and
    /// returns its recorded result if its CURRENT record is the one `recorded` accepts.
    async fn reread_after_conflict(
        &self,
        device: &DeviceId,
        recorded: impl Fn(&CertRecord) -> bool,
    ) -> Result<Reread> {
        let st = self.registry.device(device).await?;
        match st.current.as_ref().filter(|c| recorded(c)) {
            Some(cur) => Ok(Reread::Recorded(self.done_from(&st, cur)?)),
            None => Ok(Reread::Open(st)),
        }
    }

    fn warn_duplicate(&self, device: &DeviceId, ours: &str, recorded: &str) {
        tracing::warn!(
            device = %device,
            orphan = %ours,
            recorded = %recorded,
            "IssueCertificate returned a different certificate than the one recorded (idempotency window passed?): the orphan is not recorded; revoke it"
        );
        eprintln!(
            "warning: device {device}: certificate {ours} was issued but another runner recorded {recorded}; revoke the orphan"
        );
    }

    /// Calls IssueCertificate. An error says whether AWS *rejected* the request (a 4xx answer:
    /// nothing was issued) or the outcome is unknown (timeout, dropped connection, 5xx), after
    /// which a certificate may exist.
    async fn issue_certificate(
        &self,
        csr: &Csr,
        p: &IssueParams,
    ) -> std::result::Result<String, IssueFailure> {
        let kind = ValidityKind::parse(&p.validity_type).ok_or_else(|| {
            IssueFailure::Rejected(Error::Registry(format!(
                "intent has an unknown validity type {}",
                p.validity_type
            )))
        })?;
        let validity = Validity::builder()
            .r#type(ValidityPeriodType::from(kind.as_str()))
            .value(p.validity_value)
            .build()
            .map_err(|e| {
                IssueFailure::Rejected(Error::Other(format!("internal: validity: {e}")))
            })?;
        let out = self
            .clients
            .pca
            .issue_certificate()
            .certificate_authority_arn(self.ca.arn.as_str())
            .csr(Blob::new(csr.pem.as_bytes()))
            .signing_algorithm(SigningAlgorithm::from(p.signing_algorithm.as_str()))
            .template_arn(&p.template_arn)
            .validity(validity)
            .idempotency_token(&p.token)
            .send()
            .await
            .map_err(|e| {
                let rejected = matches!(&e, SdkError::ServiceError(se) if se.raw().status().is_client_error());
                let mut err = map_sdk_error(&self.clients, Service::Pca, "IssueCertificate", e);
                if err.aws_code() == Some("LimitExceededException") {
                    err = err.reword_aws(|m| format!(
                        "{m} (a resource quota, not a rate limit: not retried; ask AWS for a quota increase)"
                    ));
                }
                if rejected {
                    IssueFailure::Rejected(err)
                } else {
                    IssueFailure::Unknown(err)
                }
            })?;
        out.certificate_arn().map(str::to_string).ok_or_else(|| {
            IssueFailure::Unknown(Error::aws("IssueCertificate returned no CertificateArn"))
        })
    }

    /// Waits with the SDK's `certificate_issued` waiter (bounded) and returns (cert, chain) PEMs.
    async fn wait_and_get(&self, arn: &str) -> std::result::Result<(String, String), FetchFailure> {
        let res = self
            .clients
            .pca
            .wait_until_certificate_issued()
            .certificate_authority_arn(self.ca.arn.as_str())
            .certificate_arn(arn)
            .wait(self.opts.wait)
            .await;
        let out = match res {
            Ok(final_poll) => final_poll.into_result().map_err(|e| {
                FetchFailure::Retryable(map_sdk_error(
                    &self.clients,
                    Service::Pca,
                    "GetCertificate",
                    e,
                ))
            })?,
            Err(e) => return Err(self.waiter_failure(arn, e)),
        };
        let cert = out
            .certificate()
            .ok_or_else(|| {
                FetchFailure::Retryable(Error::aws(format!(
                    "GetCertificate returned no certificate for {arn}"
                )))
            })?
            .to_string();
        let chain = out.certificate_chain().unwrap_or("").to_string();
        Ok((cert, chain))
    }

    /// Classifies a failed `certificate_issued` wait.
    fn waiter_failure(
        &self,
        arn: &str,
        e: WaiterError<GetCertificateOutput, GetCertificateError>,
    ) -> FetchFailure {
        match e {
            WaiterError::ExceededMaxWait(m) => FetchFailure::Retryable(Error::aws(format!(
                "certificate {arn} was not issued within {:?} ({} polls): rerun to keep waiting (the ARN is recorded)",
                m.max_wait(),
                m.poll_count()
            ))),
            WaiterError::OperationFailed(of) => {
                let mapped =
                    map_sdk_error(&self.clients, Service::Pca, "GetCertificate", of.into_error());
                if mapped.aws_code() == Some("RequestFailedException") {
                    FetchFailure::Terminal(mapped.reword_aws(|m| format!(
                        "{m} (terminal: AWS will not issue this certificate); nothing recorded — a rerun with the same CSR within AWS's idempotency window sends the same token and may get this failed request back (an HSM key made for it is removed, so its rerun is a new request)"
                    )))
                } else {
                    FetchFailure::Retryable(mapped)
                }
            }
            WaiterError::FailureState(f) => {
                use aws_sdk_acmpca::error::ProvideErrorMetadata;
                FetchFailure::Retryable(match f.final_poll().as_result() {
                    Err(e) => Error::Aws {
                        message: format!(
                            "AWS Private CA GetCertificate failed: {}: {}",
                            e.code().unwrap_or("UnknownError"),
                            e.message().unwrap_or("")
                        ),
                        code: e.code().map(str::to_string),
                        request_id: None,
                    },
                    Ok(_) => Error::aws(format!(
                        "waiting for certificate {arn}: unexpected waiter state"
                    )),
                })
            }
            other => FetchFailure::Retryable(Error::aws(format!(
                "waiting for certificate {arn}: {other}"
            ))),
        }
    }
}

/// How a PENDING intent found by [`Issuer::begin`] stands for this runner.
enum Pending {
    /// Ours (or taken over): drive it.
    Claimed(Intent),
    /// A take-over lost to another runner: read again.
    Lost,
    /// A live runner holds it: wait (bounded) and read again.
    Held(Intent),
}

/// The end of the submit phase.
enum Submitted {
    /// The ARN is stored; the intent is ISSUING.
    Issuing(Intent),
    /// Another runner recorded this generation meanwhile.
    Recorded(Issued),
}

/// A failed IssueCertificate.
enum IssueFailure {
    /// AWS answered with a 4xx (or the request could not be built): nothing was issued.
    Rejected(Error),
    /// Timeout, dropped connection, 5xx or no ARN in the answer: a certificate may exist.
    Unknown(Error),
}

/// A failed wait for, or fetch of, an issued certificate.
enum FetchFailure {
    /// AWS will never issue a certificate for this ARN (`RequestFailedException`).
    Terminal(Error),
    /// Anything else: a rerun keeps waiting on the stored ARN.
    Retryable(Error),
}

/// What a re-read after a lost conditional write found.
enum Reread {
    /// The device's CURRENT record is the expected one.
    Recorded(Issued),
    /// It is not: the state as read.
    Open(DeviceState),
}
