//! `hsm-demo doctor`: every link of the chain a provisioning run needs, checked in order, each
//! with one line (✓ pass, ! warning, ✗ failure with its fix, - skipped when its inputs are not
//! configured): the PKCS#11 module, the token, the login, the key objects against the HSM's
//! capacity; the AWS credentials and region, the endpoints and the clock, the CA, the registry
//! table, the CRL bucket.
//!
//! A check that depends on one that failed is skipped and says which. Nothing is written
//! anywhere: the HSM checks open a session and read; the AWS checks only describe.

pub mod aws_checks;
pub mod clock;
pub mod hsm_checks;

use std::time::Duration;

use crate::hsm::session::ConnectOptions;
use crate::pca::ids::CaArn;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Pass,
    /// Works, but something needs attention (the fix says what).
    Warn,
    /// Broken (the fix says how to repair it).
    Fail,
    /// Not configured, or depends on a check that failed.
    Skip,
}

impl Status {
    /// The mark printed before the check's name.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "-",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// Short name (`module`, `token`, `login`, …).
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found (never a secret).
    pub detail: String,
    /// How to repair it (failures and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Pass, detail, None)
    }

    /// A warning with its fix.
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Warn, detail, Some(fix.into()))
    }

    /// A failure with its fix.
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(name, Status::Fail, detail, Some(fix.into()))
    }

    /// A skipped check, with the reason.
    pub fn skip(name: &'static str, why: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, why, None)
    }

    fn new(
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            name,
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// What doctor checks against.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Module, token and PIN source.
    pub connect: ConnectOptions,
    /// Key objects the HSM can hold (`--hsm-key-capacity`).
    pub hsm_key_capacity: Option<u64>,
    /// The issuing CA, when configured.
    pub ca_arn: Option<CaArn>,
    /// The registry table.
    pub table: String,
    /// Time budget of each AWS call (retries included).
    pub aws_budget: Duration,
}

/// Runs every check in order.
pub fn run(opts: &DoctorOptions) -> Vec<Check> {
    let mut checks = hsm_checks::run(opts);
    checks.extend(aws_checks::run(opts));
    checks
}

/// How many checks failed.
pub fn failures(checks: &[Check]) -> usize {
    checks.iter().filter(|c| c.status == Status::Fail).count()
}
