//! Renewal's claim: the intent for generation n+1 of a device whose generation n is CURRENT and
//! ISSUED. The rest of a renewal is an ordinary [`Issuer::complete`] of that claim (same token,
//! same resumption), recorded by [`crate::pca::registry::Registry::record_renewed`].

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{conflict, Claim, Issued, Issuer, Pending};
use crate::error::{Error, Result};
use crate::pca::ids::DeviceId;
use crate::pca::registry::{
    rfc3339, CertRecord, CertStatus, DeviceState, Intent, IntentState, Written,
};

/// What [`Issuer::begin_renewal`] found.
#[derive(Debug)]
pub enum RenewalBegin {
    /// CURRENT is not an ISSUED certificate (none, or revoked) and no renewal of it is open:
    /// there is nothing to renew.
    NotRenewable(Option<CertRecord>),
    /// No renewal is under way and `start` declined to begin one: the device as read (one Query,
    /// no write).
    NotStarted(Box<DeviceState>),
    /// While this runner waited, another one recorded the renewal it was about to make.
    Renewed(Issued),
    /// This runner holds the intent of the next generation (new, resumed or taken over); the
    /// device state as read with it.
    Claimed(Box<Claim>, Box<DeviceState>),
}

/// How a renewal intent found in the registry stands for this runner.
enum Found {
    /// Claimed; `true` when this runner created the intent.
    Claimed(Box<Intent>, bool),
    Again,
}

impl Issuer {
    /// Claims the renewal of `device`. An unfinished renewal intent (generation n+1 with n
    /// CURRENT) is always resumed, with its stored token, whatever `start` says; otherwise
    /// `start(state, current)` decides whether to begin one. Waits (bounded) for a live runner
    /// holding the intent, as [`Issuer::begin`] does.
    pub async fn begin_renewal(
        &self,
        device: &DeviceId,
        start: impl Fn(&DeviceState, &CertRecord) -> bool,
    ) -> Result<RenewalBegin> {
        let deadline = Instant::now() + self.opts.peer_wait;
        let mut backoff = Duration::from_millis(50);
        let mut target: Option<u32> = None;
        loop {
            let st = self.registry.device(device).await?;
            let Some(cur) = st.current.clone() else {
                return Ok(RenewalBegin::NotRenewable(None));
            };
            if target.is_some_and(|t| cur.generation >= t) && cur.status == CertStatus::Issued {
                return Ok(RenewalBegin::Renewed(self.done_from(&st, &cur)?));
            }
            let generation = cur.generation + 1;
            // A renewal interrupted before its record is finished even if its old certificate was
            // revoked meanwhile (it is then recorded as after a revocation).
            if cur.status != CertStatus::Issued && st.intent(generation).is_none() {
                return Ok(RenewalBegin::NotRenewable(Some(cur)));
            }
            let found = match st.intent(generation).cloned() {
                Some(intent) => {
                    target = Some(generation);
                    self.found_intent(device, intent, deadline, &mut backoff)
                        .await?
                }
                None if target.is_none() && !start(&st, &cur) => {
                    return Ok(RenewalBegin::NotStarted(Box::new(st)));
                }
                None => {
                    target = Some(generation);
                    let intent = self.new_intent(device, generation);
                    match self.registry.put_intent(&intent).await? {
                        Written::Yes => Found::Claimed(Box::new(intent), true),
                        Written::ConditionFailed => Found::Again,
                    }
                }
            };
            if let Found::Claimed(intent, fresh) = found {
                let claim = Claim {
                    device: device.clone(),
                    intent: *intent,
                    never_claimed: false,
                    fresh,
                    recorded_spkis: super::recorded_spkis(&st),
                    supersedes: Some(Box::new(cur)),
                };
                return Ok(RenewalBegin::Claimed(Box::new(claim), Box::new(st)));
            }
        }
    }

    /// An existing renewal intent: ours to drive (ISSUING, ours, or taken over), or read again
    /// (lost a take-over, or waited for a live holder).
    async fn found_intent(
        &self,
        device: &DeviceId,
        intent: Intent,
        deadline: Instant,
        backoff: &mut Duration,
    ) -> Result<Found> {
        if intent.ca_arn != self.ca.arn.as_str() {
            return Err(conflict(format!(
                "device {device} has an unfinished renewal from another CA ({}) since {}: finish it with that CA or run `hsm-demo pca reconcile --device-id {device}`",
                intent.ca_arn, intent.created_at
            )));
        }
        let generation = intent.generation;
        match intent.state {
            IntentState::Issuing => Ok(Found::Claimed(Box::new(intent), false)),
            IntentState::Issued => Err(Error::Registry(format!(
                "registry inconsistency: device {device} intent {generation} is ISSUED but CURRENT does not show it"
            ))),
            IntentState::Pending => match self.claim_pending(device, intent).await? {
                Pending::Claimed(i) => Ok(Found::Claimed(Box::new(i), false)),
                Pending::Lost => Ok(Found::Again),
                Pending::Held(i) if Instant::now() >= deadline => {
                    Err(Error::HeldByAnotherRunner {
                        device: device.to_string(),
                        owner: i.owner,
                        lease_until: rfc3339(
                            OffsetDateTime::from_unix_timestamp(i.lease_until)
                                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        ),
                    })
                }
                Pending::Held(_) => {
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 2);
                    tokio::time::sleep(*backoff + Duration::from_millis(jitter)).await;
                    *backoff = (*backoff * 2).min(Duration::from_secs(2));
                    Ok(Found::Again)
                }
            },
        }
    }

    /// The record transaction of a renewal. If CURRENT is no longer `old` because `old` was
    /// revoked meanwhile, the new certificate is recorded as a first issuance after a revocation
    /// would be (nothing left to supersede); any other failed condition goes to the caller's
    /// re-read.
    pub(super) async fn record_renewal(
        &self,
        rec: &CertRecord,
        old: &CertRecord,
        spki_sha256: &str,
    ) -> Result<Written> {
        let key = Some(spki_sha256);
        match self.registry.record_renewed(rec, old, key).await? {
            Written::Yes => Ok(Written::Yes),
            Written::ConditionFailed => self.registry.record_issued_with_key(rec, key).await,
        }
    }
}
