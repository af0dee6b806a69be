//! `pca reconcile`: find intents that did not reach ISSUED and say what each means.
//!
//! The one gap the intent record cannot close: a process dies after AWS issued a certificate but
//! before the returned ARN was stored (a window of one HTTP response + one UpdateItem). A rerun
//! within AWS's idempotency window (≤ 1 minute assumed; 1–5 min documented) gets the same
//! certificate back because it sends the same token. A rerun *after* the window cannot: AWS issues
//! a second certificate and the first stays unrecorded. Such intents are PENDING with request
//! parameters set and older than the window; this report (and a warning when `issue`/`provision`
//! resumes one) flags them as POSSIBLE-ORPHAN with the token to look for in the CA's audit report
//! (CreateCertificateAuthorityAuditReport lists every issued serial; compare with SERIAL# items).

use std::time::Duration;

use time::OffsetDateTime;

use crate::error::Result;
use crate::pca::ids::DeviceId;
use crate::pca::registry::{Intent, IntentState, Registry};

/// AWS's idempotency window, conservatively.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(60);

/// What an open intent means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntentCheck {
    /// Claimed but no request parameters: IssueCertificate was never called. Safe to rerun.
    Claimed,
    /// Parameters set, younger than the window: a rerun resumes with the same token.
    InFlight,
    /// Parameters set, older than the window: IssueCertificate may have issued an unrecorded
    /// certificate.
    PossibleOrphan,
    /// ARN stored: a rerun completes it without a new IssueCertificate.
    Resumable,
}

/// One open intent and its meaning.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// The intent.
    pub intent: Intent,
    /// Classification.
    pub check: IntentCheck,
    /// Age in seconds.
    pub age_secs: i64,
    /// What to do.
    pub advice: String,
}

/// Classifies an intent.
pub fn classify(i: &Intent, now: i64, window: Duration) -> Option<Finding> {
    let age = now - i.created_epoch;
    let (check, advice) = match (i.state, &i.params, &i.cert_arn) {
        (IntentState::Issued, _, _) => return None,
        (IntentState::Issuing, _, Some(arn)) => (
            IntentCheck::Resumable,
            format!("rerun issue/provision for {}: it completes from {arn} without a new IssueCertificate", i.device_id),
        ),
        (IntentState::Issuing, _, None) | (IntentState::Pending, None, _) => (
            IntentCheck::Claimed,
            format!("nothing was sent to AWS; rerun issue/provision for {}", i.device_id),
        ),
        (IntentState::Pending, Some(p), _) if age < window.as_secs() as i64 => (
            IntentCheck::InFlight,
            format!("a rerun for {} resends token {} (AWS returns the same certificate)", i.device_id, p.token),
        ),
        (IntentState::Pending, Some(p), _) => (
            IntentCheck::PossibleOrphan,
            format!(
                "IssueCertificate with token {} may have issued a certificate whose ARN was never stored; check the CA's audit report for a serial of {} not in the registry (revoke it), then rerun",
                p.token, i.device_id
            ),
        ),
    };
    Some(Finding {
        intent: i.clone(),
        check,
        age_secs: age,
        advice,
    })
}

/// Open intents of one device (one Query) or of all devices (a Scan).
pub async fn reconcile(
    registry: &Registry,
    device: Option<&DeviceId>,
    window: Duration,
) -> Result<Vec<Finding>> {
    let intents = match device {
        Some(d) => registry.device(d).await?.intents,
        None => registry.open_intents().await?,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Ok(intents
        .iter()
        .filter_map(|i| classify(i, now, window))
        .collect())
}
