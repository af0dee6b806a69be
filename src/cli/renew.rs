//! `hsm-demo renew`: renew device certificates before they expire (one device, a manifest, or
//! every device of the registry). The flow is [`crate::pca::renew`]; batches run through
//! [`crate::pca::batch`] like `provision --manifest`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::hsm::session::HsmSession;
use crate::pca::aws::{AwsClients, AwsOptions};
use crate::pca::batch::{run_batch_with, summary_text, BatchOptions, Status, Summary};
use crate::pca::csr::Csr;
use crate::pca::hsm_pool::HsmPool;
use crate::pca::ids::{CaArn, DeviceId};
use crate::pca::issue::{IssueOptions, Issuer, Template};
use crate::pca::output::write_cert_files;
use crate::pca::provision::{NoHsm, SessionKeys};
use crate::pca::ratelimit::{RateLimits, Shaper};
use crate::pca::renew::job::{all_devices_manifest, RenewJob};
use crate::pca::renew::policy::{parse_percent, parse_seconds};
use crate::pca::renew::{renew_device, DueRule, KeySource, Policy, RenewRequest, Renewal};
use crate::pca::validity::ValiditySpec;

const AFTER_HELP: &str = "\
A device is due when its CURRENT certificate (ISSUED) has passed its renewal point: 2/3 of its
lifetime by default, --at PERCENT of it, or --within DURATION of its NotAfter; --jitter moves each
device's point earlier by a deterministic share (a hash of the device id) of PERCENT of the
lifetime. Devices not due are reported not-due and cost one registry read, no write.
With --all or --manifest, a certificate recorded less than --min-interval ago (default: a third of
its lifetime) is never renewed, whatever --within says. --force renews a named device now.

Generation n+1 is issued while n stays valid, with the same exactly-once machinery as provision
(an interrupted renewal resumes with the same idempotency token); CURRENT moves to it only in the
record transaction, which marks n SUPERSEDED. --revoke-superseded then revokes n (reason
superseded) — never before the new certificate is recorded; a rerun finishes it.
Keys rotate: generation n gets a new HSM key pair labelled device-<id>-g<n> (generation 0's is
device-<id>). --reuse-key keeps the current key (refused for a key revoked as compromised);
--csr FILE renews one device that holds its own key. No key is ever destroyed.

Examples:
  hsm-demo renew --ca-arn $CA_ARN --device-id device-42
  hsm-demo renew --ca-arn $CA_ARN --device-id device-42 --force --revoke-superseded
  hsm-demo renew --ca-arn $CA_ARN --all --jitter 10
  hsm-demo --json renew --ca-arn $CA_ARN --manifest fleet.csv --within 7d --concurrency 4";

/// `renew` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// ARN of the issuing CA of the new certificates
    #[arg(long, env = "HSM_DEMO_CA_ARN", value_name = "ARN")]
    pub ca_arn: String,
    /// Renew this device
    #[arg(long, value_name = "ID", required_unless_present_any = ["manifest", "all"], conflicts_with_all = ["manifest", "all"])]
    pub device_id: Option<String>,
    /// Renew the devices of this manifest (the provision manifest format; its subjects are used)
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub manifest: Option<PathBuf>,
    /// Renew every device whose current certificate is ISSUED (subjects kept from the certificates)
    #[arg(long)]
    pub all: bool,
    /// Due when the certificate ends within DURATION (e.g. 7d, 12h) instead of at 2/3 of its lifetime
    #[arg(long, value_name = "DURATION", conflicts_with = "at")]
    pub within: Option<String>,
    /// Due at PERCENT of the lifetime (default 66.7)
    #[arg(long, value_name = "PERCENT")]
    pub at: Option<String>,
    /// Spread renewal points: each device's point moves earlier by up to PERCENT of its lifetime (deterministic per device)
    #[arg(long, value_name = "PERCENT")]
    pub jitter: Option<String>,
    /// --all/--manifest: never renew a certificate recorded less than DURATION ago [default: a third of its lifetime]
    #[arg(long, value_name = "DURATION")]
    pub min_interval: Option<String>,
    /// Renew the named device even if it is not due
    #[arg(long, requires = "device_id")]
    pub force: bool,
    /// Revoke the superseded certificate (reason superseded) after the new one is recorded
    #[arg(long)]
    pub revoke_superseded: bool,
    /// Keep the current key (default: a new HSM key pair per generation)
    #[arg(long)]
    pub reuse_key: bool,
    /// The device's own CSR (a device whose key is not in the HSM); one device only
    #[arg(long, value_name = "FILE", requires = "device_id")]
    pub csr: Option<PathBuf>,
    /// Template of the new certificates
    #[arg(long, value_enum, default_value_t = Template::Client)]
    pub template: Template,
    /// Validity of the new certificates (as provision)
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub validity: String,
    /// Write <device-id>.cert.pem and <device-id>.chain.pem of renewed devices here
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Maximum seconds to wait for a certificate to be issued
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub wait_secs: u64,
    /// Curve of new keys: p256 or p384
    #[arg(long, default_value = "p256", value_name = "CURVE")]
    pub curve: Curve,
    /// --all/--manifest: HSM worker threads
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Client-side limit on IssueCertificate requests per second
    #[arg(long, default_value_t = crate::pca::ratelimit::DEFAULT_ISSUE_TPS, value_name = "TPS")]
    pub issue_tps: f64,
    /// Client-side limit on GetCertificate requests per second
    #[arg(long, default_value_t = crate::pca::ratelimit::DEFAULT_GET_TPS, value_name = "TPS")]
    pub get_tps: f64,
    /// --all/--manifest: devices in flight at once [default: as provision --manifest]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub in_flight: Option<u16>,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// What is checked locally, before the HSM or AWS.
struct Checked {
    ca: CaArn,
    issue: IssueOptions,
    policy: Policy,
    curve: Curve,
    shaper: Shaper,
}

fn usage(e: Error) -> Error {
    Error::Usage(e.one_line())
}

fn check(a: &Args) -> Result<Checked> {
    let ca = CaArn::parse(&a.ca_arn)?;
    let validity = ValiditySpec::parse(&a.validity)?;
    let curve = a.curve;
    let rule = match (&a.within, &a.at) {
        (Some(w), _) => DueRule::Within(parse_seconds("--within", w)?),
        (None, Some(p)) => DueRule::Fraction(parse_percent("--at", p)? / 100.0),
        (None, None) => DueRule::default(),
    };
    let policy = Policy {
        rule,
        jitter_pct: match &a.jitter {
            Some(j) => parse_percent("--jitter", j)?,
            None => 0.0,
        },
        min_interval: match &a.min_interval {
            Some(m) => Some(parse_seconds("--min-interval", m)?),
            None => None,
        },
        guard: a.device_id.is_none(),
        force: a.force,
    };
    if let Some(d) = &a.out_dir {
        if !d.is_dir() {
            return Err(Error::input(format!(
                "--out-dir {} is not a directory",
                d.display()
            )));
        }
    }
    let shaper = Shaper::new(RateLimits {
        issue_tps: a.issue_tps,
        get_tps: a.get_tps,
        ..RateLimits::default()
    })?;
    let issue = IssueOptions {
        template: a.template,
        validity,
        wait: Duration::from_secs(a.wait_secs.max(1)),
        ..IssueOptions::default()
    };
    Ok(Checked {
        ca,
        issue,
        policy,
        curve,
        shaper,
    })
}

/// Runs `renew`.
pub fn run(a: Args, g: &Global) -> Result<()> {
    let c = check(&a).map_err(usage)?;
    match a.device_id.clone() {
        Some(id) => run_one(&a, c, DeviceId::parse(&id).map_err(usage)?, g),
        None => run_batch_mode(&a, c, g),
    }
}

/// One device (`--device-id`).
fn run_one(a: &Args, c: Checked, device: DeviceId, g: &Global) -> Result<()> {
    let csr = match &a.csr {
        Some(p) => Some(Csr::from_file(p).map_err(usage)?),
        None => None,
    };
    let req = RenewRequest {
        device: device.clone(),
        subject: None,
        curve: c.curve,
        key: match csr {
            Some(csr) => KeySource::Csr {
                csr: Box::new(csr),
                reuse: a.reuse_key,
            },
            None if a.reuse_key => KeySource::Reuse,
            None => KeySource::Rotate,
        },
        policy: c.policy,
        revoke_superseded: a.revoke_superseded,
    };
    // Log in before any AWS call (a wrong PIN fails first), unless the device brings its CSR.
    let session = match &a.csr {
        Some(_) => None,
        None => Some(HsmSession::connect(&g.connect_options())?),
    };
    let aws_opts = AwsOptions {
        shaper: Some(c.shaper),
        ..a.aws.options()
    };
    let r = block_on(async {
        let clients = AwsClients::load(&aws_opts).await?;
        let issuer = Issuer::new(&clients, &a.aws.table, &c.ca, c.issue).await?;
        match &session {
            Some(s) => renew_device(&issuer, &mut SessionKeys::new(s)?, &req).await,
            None => renew_device(&issuer, &mut NoHsm, &req).await,
        }
    })??;
    report_one(a, &device, &r, g)
}

fn report_one(a: &Args, device: &DeviceId, r: &Renewal, g: &Global) -> Result<()> {
    let files = match (&a.out_dir, &r.issued) {
        (Some(dir), Some(i)) if r.status != Status::NotDue => {
            Some(write_cert_files(dir, device, &i.cert_pem, &i.chain_pem)?)
        }
        _ => None,
    };
    if g.json {
        let mut v = serde_json::to_value(r).map_err(|e| Error::Other(format!("JSON: {e}")))?;
        v["device_id"] = serde_json::json!(device.as_str());
        if let Some(f) = &files {
            v["files"] = serde_json::json!(f);
        }
        return print_json(&v);
    }
    let mut out = match (&r.status, &r.issued) {
        (Status::NotDue, _) if r.too_recent => format!(
            "[{device}] not-due: its certificate was recorded less than the minimum interval ago (not before {})\n",
            r.due_at.as_deref().unwrap_or("?")
        ),
        (Status::NotDue, _) => format!(
            "[{device}] not-due: renewal point {}\n",
            r.due_at.as_deref().unwrap_or("?")
        ),
        (Status::Issued, Some(i)) => format!(
            "[{device}] renewed: serial {} (generation {}, NotAfter {}){}\n",
            i.record.serial,
            i.record.generation,
            i.record.not_after,
            r.key_label
                .as_deref()
                .map(|l| format!(", key '{l}'"))
                .unwrap_or_default()
        ),
        (_, Some(i)) => format!(
            "[{device}] already renewed: serial {} (generation {})\n",
            i.record.serial, i.record.generation
        ),
        _ => format!("[{device}] {:?}\n", r.status),
    };
    for s in &r.revoked {
        out.push_str(&format!("[{device}] superseded certificate {s} revoked\n"));
    }
    if let Some(f) = &files {
        out.push_str(&format!(
            "[{device}] files written: {}, {}\n",
            f.cert.display(),
            f.chain.display()
        ));
    }
    print_bytes(out.as_bytes())
}

/// `--manifest` / `--all`: the batch pipeline with the renewal job.
fn run_batch_mode(a: &Args, c: Checked, g: &Global) -> Result<()> {
    if a.csr.is_some() || a.force {
        return Err(Error::Usage(
            "--csr and --force name one device: use --device-id".into(),
        ));
    }
    let concurrency = usize::from(a.concurrency);
    let in_flight = match a.in_flight {
        Some(n) => usize::from(n),
        None => ((a.issue_tps * 2.0).ceil() as usize).clamp((4 * concurrency).max(8), 256),
    };
    let aws_opts = AwsOptions {
        shaper: Some(c.shaper.clone()),
        ..a.aws.options()
    };
    // The manifest: given (validated before the HSM or AWS), or every device of the registry.
    let (manifest, temp) = match &a.manifest {
        Some(m) => (m.clone(), false),
        None => {
            let registry_list = block_on(async {
                let clients = AwsClients::load(&aws_opts).await?;
                let reg = crate::pca::registry::Registry::new(&clients, &a.aws.table);
                all_devices_manifest(&reg, &std::env::temp_dir()).await
            })??;
            if registry_list.1 == 0 {
                let _ = std::fs::remove_file(&registry_list.0);
                return batch_outcome(&Summary::default(), g);
            }
            (registry_list.0, true)
        }
    };
    let res = run_manifest(a, &c, g, &manifest, in_flight, &aws_opts);
    if temp {
        let _ = std::fs::remove_file(&manifest);
    }
    batch_outcome(&res?, g)
}

fn run_manifest(
    a: &Args,
    c: &Checked,
    g: &Global,
    manifest: &std::path::Path,
    in_flight: usize,
    aws_opts: &AwsOptions,
) -> Result<Summary> {
    let info = crate::pca::manifest::validate(manifest).map_err(usage)?;
    let copts = g.connect_options();
    let mut main = HsmSession::open(&copts)?;
    let pin = copts.pin.get(main.token_label())?;
    main.login_with_pin(&pin)?;
    let token_serial = main.token().serial.clone();
    let pool = Arc::new(HsmPool::start(
        main.module(),
        Some(&token_serial),
        &pin,
        usize::from(a.concurrency),
    )?);
    drop(pin);
    let opts = BatchOptions {
        manifest: manifest.to_path_buf(),
        ca: c.ca.clone(),
        issue: c.issue.clone(),
        table: a.aws.table.clone(),
        in_flight,
        out_dir: a.out_dir.clone(),
        retry_failed: false,
        curve: c.curve,
        json: g.json,
        progress: true,
    };
    let job = Arc::new(RenewJob {
        policy: c.policy.clone(),
        reuse_key: a.reuse_key,
        revoke_superseded: a.revoke_superseded,
        curve: c.curve,
        subject_from_manifest: a.manifest.is_some(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let notify = Arc::new(tokio::sync::Notify::new());
    let res = block_on(async {
        let signals = crate::cli::provision::interrupt_handler(
            stop.clone(),
            notify.clone(),
            Some(pool.clone()),
        )?;
        let r = async {
            let clients = AwsClients::load(aws_opts).await?;
            run_batch_with(
                &opts,
                &info,
                &clients,
                Some(pool.clone()),
                Some(&c.shaper),
                stop,
                notify,
                Some(job),
            )
            .await
        }
        .await;
        signals.abort();
        r
    })?;
    drop(pool);
    drop(main);
    res
}

/// Prints the summary; the outcome decides the exit status (in main).
fn batch_outcome(s: &Summary, g: &Global) -> Result<()> {
    if g.json {
        print_bytes(format!("{}\n", serde_json::json!({ "summary": s })).as_bytes())?;
    } else {
        print_bytes(summary_text(s).as_bytes())?;
    }
    if s.interrupted {
        return Err(Error::Interrupted);
    }
    if s.failed > 0 || s.stopped.is_some() {
        let first = s
            .failures
            .first()
            .map(|f| format!(" (first: {}: {})", f.device_id, f.error))
            .unwrap_or_default();
        return Err(Error::Other(format!(
            "{} of {} devices failed{first}; rerun to retry them",
            s.failed, s.devices
        )));
    }
    Ok(())
}
