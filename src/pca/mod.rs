//! AWS Private CA bridge: HSM-backed CSRs → IssueCertificate (idempotent, crash-safe) → serials
//! recorded in DynamoDB.
//!
//! Library entry points (what `pca …` and `provision` call, and what batch provisioning builds on):
//! - [`aws::AwsClients::load`] — clients from the standard AWS configuration (once per process);
//! - [`issue::Issuer::new`] — one per CA and table (loads the CA once);
//! - [`issue::Issuer::begin`] / [`issue::Issuer::complete`] — claim a device's intent, then issue
//!   and record (HSM work — key and CSR — goes between the two);
//! - [`provision::provision_device`] — the whole flow for one device on a caller's HSM session;
//! - [`registry::Registry`] — look-ups and the table itself; [`revoke::revoke`].

/// A crash point for tests (`--features failpoints`, `FAILPOINTS=<name>=return` exits the process
/// with status 86 on the spot; `=panic` panics). Compiles to nothing otherwise.
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| {
            eprintln!("failpoint {}: exiting", $name);
            std::process::exit(86)
        })
    };
}

pub mod audit;
pub mod aws;
pub mod aws_auth;
pub mod aws_log;
pub mod batch;
pub mod ca;
pub mod crl;
pub mod csr;
pub mod decommission;
pub mod device_csr;
pub mod device_key;
pub mod failed;
pub mod hsm_pool;
pub mod ids;
pub mod issue;
pub mod manifest;
pub mod output;
pub mod owner;
pub mod plan;
pub mod provision;
pub mod ratelimit;
pub mod reconcile;
pub mod records;
pub mod registry;
pub mod renew;
pub mod revoke;
pub mod s3;
pub mod token;
pub mod validity;

pub use ids::{CaArn, DeviceId, Serial};
pub use issue::{Begin, Claim, IssueOptions, Issued, Issuer, Template};
pub use registry::{Registry, DEFAULT_TABLE};
