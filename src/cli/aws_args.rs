//! What every AWS command shares: the registry/retry arguments and the async runtime.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::pca::aws::AwsOptions;
use crate::pca::registry::DEFAULT_TABLE;

/// Registry and retry options shared by the AWS subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// DynamoDB registry table
    #[arg(long, env = "HSM_DEMO_TABLE", default_value = DEFAULT_TABLE, value_name = "NAME")]
    pub table: String,

    /// Attempts per AWS call on 5xx and other server errors (exponential backoff with jitter)
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,

    /// Seconds one AWS call keeps retrying while throttled, timed out or stalled (capped exponential backoff with jitter)
    #[arg(long, env = "HSM_DEMO_RETRY_BUDGET_SECS", default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub retry_budget_secs: u64,

    /// Seconds one attempt of an AWS call may take before it is retried (or fails)
    #[arg(long, default_value_t = 20, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub attempt_timeout_secs: u64,

    /// Seconds an answer may move no byte before it counts as stalled and is retried (within the retry budget)
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub stall_grace_secs: u64,
}

impl AwsArgs {
    /// The AWS client options.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            max_attempts: self.max_attempts,
            retry_budget: Duration::from_secs(self.retry_budget_secs),
            attempt_timeout: Duration::from_secs(self.attempt_timeout_secs),
            stall_grace: Duration::from_secs(self.stall_grace_secs),
            ..AwsOptions::default()
        }
    }
}

/// Runs a future on a fresh single-threaded tokio runtime (only AWS commands call this).
pub fn block_on<F: Future>(f: F) -> Result<F::Output> {
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))?;
    Ok(rt.block_on(f))
}
