//! `hsm-demo doctor`: checks every link a provisioning run needs and prints one line each.

use std::time::Duration;

use crate::cli::Global;
use crate::doctor::{self, Check, DoctorOptions, Status};
use crate::error::{Error, Result};
use crate::pca::ids::CaArn;
use crate::pca::registry::DEFAULT_TABLE;

const AFTER_HELP: &str = "\
Checks, in order: the PKCS#11 module loads (C_GetInfo), the token is found (label, serial,
memory), login works with the configured PIN source (the PIN is never printed), the key objects
on the token against --hsm-key-capacity; AWS credentials resolve (the source and the last four
characters of the access key id, never the secret) with a region, the endpoints answer and this
host's clock is within 60 s of theirs (AWS refuses signatures 5 minutes off), the CA is ACTIVE
(key algorithm, validity left), the registry table has the pk/sk key and point-in-time recovery,
and where the CA publishes its CRL. A check whose inputs are not configured is skipped (-), and
so is one that depends on a check that failed. Nothing is written anywhere.

Examples:
  hsm-demo doctor
  hsm-demo doctor --ca-arn $CA_ARN --hsm-key-capacity 3300
  hsm-demo --json doctor --ca-arn $CA_ARN | jq '.checks[] | select(.status == \"fail\")'";

/// Arguments of `hsm-demo doctor`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The issuing CA to check (skipped when absent)
    #[arg(long, env = "HSM_DEMO_CA_ARN", value_name = "ARN")]
    pub ca_arn: Option<String>,

    /// DynamoDB registry table
    #[arg(long, env = "HSM_DEMO_TABLE", default_value = DEFAULT_TABLE, value_name = "NAME")]
    pub table: String,

    /// Key objects the HSM holds at most (AWS CloudHSM hsm1.medium: 3300 per cluster; a device key pair is 2)
    #[arg(long, value_name = "N")]
    pub hsm_key_capacity: Option<u64>,

    /// Seconds each AWS check may take, retries included
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout_secs: u64,
}

/// Runs the checks; fails (exit 1) when any check failed.
pub fn run(a: Args, g: &Global) -> Result<()> {
    let ca_arn = match &a.ca_arn {
        Some(s) if !s.is_empty() => Some(CaArn::parse(s).map_err(|e| Error::Usage(e.one_line()))?),
        _ => None,
    };
    let opts = DoctorOptions {
        connect: g.connect_options(),
        hsm_key_capacity: a.hsm_key_capacity,
        ca_arn,
        table: a.table,
        aws_budget: Duration::from_secs(a.timeout_secs),
    };
    let checks = doctor::run(&opts);
    print(&checks, g.json);
    let failed = doctor::failures(&checks);
    if failed > 0 {
        return Err(Error::ChecksFailed {
            failed,
            total: checks.len(),
        });
    }
    Ok(())
}

fn print(checks: &[Check], json: bool) {
    if json {
        let ok = !checks.iter().any(|c| c.status == Status::Fail);
        println!("{}", serde_json::json!({ "ok": ok, "checks": checks }));
        return;
    }
    for c in checks {
        let mut line = format!("{} {:<11} {}", c.status.mark(), c.name, c.detail);
        if let Some(fix) = c.fix.as_deref().filter(|f| !f.is_empty()) {
            line.push_str(&format!(" → {fix}"));
        }
        println!("{line}");
    }
}
