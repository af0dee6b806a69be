//! `pca expiring`: devices whose current certificate ends within a window, and those already
//! expired, soonest first. With `--fail-if-any`, a non-empty list is exit status 3 (for cron and
//! alerting; the status is decided in main from [`Error::ExpiringFound`]).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::aws::AwsClients;
use crate::pca::ids::CaArn;
use crate::pca::registry::{CertRecord, CertStatus, Registry};
use crate::pca::renew::policy::parse_seconds;

/// `pca expiring`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The devices whose CURRENT certificate is ISSUED and ends within DURATION, expired ones
included, soonest first. One paginated Scan of the registry (see docs/registry-schema.md).

Examples:
  hsm-demo pca expiring --within 7d
  hsm-demo --json pca expiring --within 30d --ca-arn $CA_ARN
  hsm-demo pca expiring --within 3d --fail-if-any || alert   # exit 3 when any"
)]
pub struct ExpiringArgs {
    /// Window: certificates ending within it (e.g. 7d, 12h, 2w)
    #[arg(long, value_name = "DURATION")]
    pub within: String,
    /// Only certificates issued by this CA
    #[arg(long, value_name = "ARN")]
    pub ca_arn: Option<String>,
    /// Exit with status 3 when the list is not empty
    #[arg(long)]
    pub fail_if_any: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// One listed device.
#[derive(Debug, serde::Serialize)]
struct Expiring {
    device_id: String,
    serial: String,
    ca_arn: String,
    generation: u32,
    not_after: String,
    /// Seconds left (negative: expired that long ago).
    seconds_left: i64,
    expired: bool,
}

/// The ISSUED records of `all` that end before `now + within`, soonest first.
fn select(
    all: Vec<CertRecord>,
    ca: Option<&str>,
    now: OffsetDateTime,
    within: i64,
) -> Vec<Expiring> {
    let mut v: Vec<Expiring> = all
        .into_iter()
        .filter(|r| r.status == CertStatus::Issued && ca.is_none_or(|c| r.ca_arn == c))
        .filter_map(|r| {
            let na = OffsetDateTime::parse(&r.not_after, &Rfc3339).ok()?;
            let left = (na - now).whole_seconds();
            (left <= within).then_some(Expiring {
                device_id: r.device_id,
                serial: r.serial,
                ca_arn: r.ca_arn,
                generation: r.generation,
                not_after: r.not_after,
                seconds_left: left,
                expired: left <= 0,
            })
        })
        .collect();
    v.sort_by(|a, b| (a.seconds_left, &a.device_id).cmp(&(b.seconds_left, &b.device_id)));
    v
}

/// Runs `pca expiring`.
pub fn run(a: ExpiringArgs, g: &Global) -> Result<()> {
    let within = parse_seconds("--within", &a.within).map_err(|e| Error::Usage(e.one_line()))?;
    let ca = match &a.ca_arn {
        Some(c) => Some(CaArn::parse(c).map_err(|e| Error::Usage(e.one_line()))?),
        None => None,
    };
    let aws = a.aws.clone();
    let all = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        Registry::new(&clients, &aws.table)
            .list(Some(CertStatus::Issued))
            .await
    })??;
    let v = select(
        all,
        ca.as_ref().map(CaArn::as_str),
        OffsetDateTime::now_utc(),
        within,
    );
    if g.json {
        print_json(&serde_json::to_value(&v).map_err(|e| Error::Other(e.to_string()))?)?;
    } else {
        let mut s = String::new();
        for e in &v {
            let when = if e.expired {
                format!("expired {} ago", human(-e.seconds_left))
            } else {
                format!("in {}", human(e.seconds_left))
            };
            s.push_str(&format!(
                "{}\t{}\t{}\t{when}\n",
                e.device_id, e.serial, e.not_after
            ));
        }
        if v.is_empty() {
            s.push_str(&format!("no certificate ends within {}\n", a.within.trim()));
        }
        print_bytes(s.as_bytes())?;
    }
    if a.fail_if_any && !v.is_empty() {
        return Err(Error::ExpiringFound(v.len()));
    }
    Ok(())
}

fn human(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}min", s / 3600, (s % 3600) / 60),
        s => format!("{}min", s / 60),
    }
}
