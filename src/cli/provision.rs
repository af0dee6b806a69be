//! `hsm-demo provision --ca-arn ARN --device-id ID`: the whole flow for one device, step by step.

use std::path::PathBuf;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::print_bytes;
use crate::cli::issue_args::{print_issued, IssueCommon, SubjectArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;
use crate::pca::aws::AwsClients;
use crate::pca::issue::{Issuer, Template};
use crate::pca::output::write_cert_files;
use crate::pca::provision::{
    provision_device, DeviceRequest, KeyOutcome, NoHsm, SessionKeys, Step,
};

const AFTER_HELP: &str = "\
Steps: registry look-up → intent → key in the HSM (label device-<id>: created if absent, reused if
present) → CSR signed in the HSM → IssueCertificate (idempotency token) → wait → record in DynamoDB
→ <out-dir>/<id>.cert.pem and <id>.chain.pem. Rerunning it — after success, a crash or Ctrl-C, or
while another process runs it — never issues a second certificate for the device.

Examples:
  export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=us-east-1 HSM_DEMO_PIN=123456
  hsm-demo provision --ca-arn $CA_ARN --device-id device-42
  hsm-demo provision --ca-arn $CA_ARN --device-id device-43 --validity 12h --template server --san-dns d43.example.org
  hsm-demo --json provision --ca-arn $CA_ARN --device-id device-42 --out-dir certs

Fleets (--manifest): the whole manifest is validated first (malformed line, duplicate device id,
unknown template, empty: one-line error naming the line, exit 2, nothing issued). Keys and CSRs
are made by --concurrency HSM sessions; IssueCertificate and GetCertificate are paced by token
buckets at --issue-tps / --get-tps (the ceiling of this process) and slowed when AWS throttles,
so several runners on one account share its quota (throttled calls are retried for up to
--retry-budget-secs, never reported). Progress: a bar on a terminal, a line every 10 s otherwise; then a
summary. --json: one JSON object per device on stdout, then {\"summary\": {...}}. A failed device
does not stop the batch; it gets a FAILED marker in the registry, and --retry-failed reruns only
those. Rerun after Ctrl-C, a crash or a failure to resume: recorded devices are skipped, nothing
is issued twice. Several processes (or hosts) may run the same manifest: they share the work.
Device-generated keys: --csr FILE (one device) or a csr column / \"csr\" key (manifest, a path
relative to the manifest's directory) gives the device's own CSR; no HSM key is made for it, and
when no device needs one the PKCS#11 module is not loaded at all. Every CSR is checked first
(one request, <= 32 KiB, signature, EC P-256/P-384, subject and SANs as the row gives them) and
a public key certified for another device is refused. --plan validates everything, reads the
registry and prints devices, already issued, to issue, HSM keys, time, cost and warnings
(--json: one object), writing nothing. A device retired by `pca decommission` is refused unless
--recommission.

More examples:
  hsm-demo provision --ca-arn $CA_ARN --manifest fleet.csv
  hsm-demo --json provision --ca-arn $CA_ARN --manifest fleet.jsonl --concurrency 4 --out-dir certs
  hsm-demo provision --ca-arn $CA_ARN --manifest fleet.csv --retry-failed
  hsm-demo provision --ca-arn $CA_ARN --device-id device-44 --csr device-44.csr
  hsm-demo --json provision --ca-arn $CA_ARN --manifest fleet.csv --plan --hsm-key-capacity 3300";

/// `provision` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// ARN of the issuing CA (arn:aws:acm-pca:<region>:<account>:certificate-authority/<uuid>)
    #[arg(long, env = "HSM_DEMO_CA_ARN", value_name = "ARN")]
    pub ca_arn: String,

    /// Device id: 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'
    #[arg(long, value_name = "ID", required_unless_present = "manifest")]
    pub device_id: Option<String>,

    /// Fleet manifest: CSV (header device_id,cn,san_dns,san_uri,template,csr; SANs separated by ';') or JSON lines; validated as a whole before any AWS call
    #[arg(long, value_name = "FILE", conflicts_with_all = ["device_id", "key_label", "cn", "san_dns", "san_uri", "csr"])]
    pub manifest: Option<PathBuf>,

    /// The device's own CSR (PEM or DER): its key was generated on the device; no HSM module is loaded and no PIN asked
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_label", "curve"])]
    pub csr: Option<PathBuf>,

    /// --manifest: validate everything and read the registry, then print what a run would do (devices, to issue, HSM keys, time, cost, warnings); writes nothing
    #[arg(long, requires = "manifest")]
    pub plan: bool,

    /// --plan: HSM key objects the token can still hold (a device key pair takes 2; CloudHSM: 3,300 per cluster on hsm1.medium)
    #[arg(long, value_name = "N", requires = "plan")]
    pub hsm_key_capacity: Option<u64>,

    /// Provision a device that `pca decommission` retired (otherwise refused)
    #[arg(long)]
    pub recommission: bool,

    /// Certificate template: client (clientAuth), server (serverAuth) or plain (EndEntityCertificate); with --manifest, the default for entries without one
    #[arg(long, value_enum, env = "HSM_DEMO_TEMPLATE", default_value_t = Template::Client)]
    pub template: Template,

    /// Validity: 12h, 30d, 2w, 6mo, 1y (a bare 'm' is refused: 30min or 30mo; sub-day values are sent as ABSOLUTE; minimum 1h; must end before the CA's NotAfter)
    #[arg(
        long,
        env = "HSM_DEMO_VALIDITY",
        default_value = "30d",
        value_name = "DURATION"
    )]
    pub validity: String,

    /// Directory for <device-id>.cert.pem and <device-id>.chain.pem [default: . for one device; with --manifest, no files unless given]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Maximum seconds to wait for a certificate to be issued (certificate_issued waiter)
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub wait_secs: u64,

    /// Subject (CN defaults to the device id).
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// HSM key label [default: device-<id>]
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,
    /// Curve for a new key: p256 or p384 [default: p256]
    #[arg(long, value_name = "CURVE")]
    pub curve: Option<crate::hsm::ec::Curve>,

    /// --manifest: HSM worker threads, one PKCS#11 session each (key generation is serialised, CSR signing runs in parallel)
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Client-side limit on IssueCertificate requests per second (AWS's default quota: 25)
    #[arg(long, env = "HSM_DEMO_ISSUE_TPS", default_value_t = crate::pca::ratelimit::DEFAULT_ISSUE_TPS, value_name = "TPS")]
    pub issue_tps: f64,

    /// Client-side limit on GetCertificate requests per second (AWS's default quota: 75)
    #[arg(long, env = "HSM_DEMO_GET_TPS", default_value_t = crate::pca::ratelimit::DEFAULT_GET_TPS, value_name = "TPS")]
    pub get_tps: f64,

    /// --manifest: devices in flight at once [default: 2 x issue-tps, at least 4 x concurrency, at most 256]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub in_flight: Option<u16>,

    /// --manifest: provision only the devices whose last attempt failed (FAILED marker in the registry)
    #[arg(long)]
    pub retry_failed: bool,

    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `provision`.
pub fn run(a: Args, g: &Global) -> Result<()> {
    if let Some(m) = a.manifest.clone() {
        return run_manifest(a, m, g);
    }
    if a.retry_failed {
        // clap drops `requires` when the required argument conflicts with one given (--device-id).
        return Err(Error::Usage("--retry-failed needs --manifest".into()));
    }
    let common = IssueCommon {
        ca_arn: a.ca_arn.clone(),
        device_id: a.device_id.clone().unwrap_or_default(),
        template: a.template,
        validity: a.validity.clone(),
        out_dir: a.out_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        wait_secs: a.wait_secs,
    };
    let (ca, device, mut opts) = common.validate()?;
    opts.recommission = a.recommission;
    let mut req = DeviceRequest::new(device.clone());
    if let Some(path) = &a.csr {
        // The device's own key: checked now, before any AWS call; the HSM is never opened.
        let (csr, subject) =
            crate::pca::device_csr::load_device_csr(path, &a.subject.request(None))?;
        req.csr = subject;
        req.device_csr = Some(csr);
        return run_one(a, g, ca, opts, req, None);
    }
    req.csr = a.subject.request(Some(device.as_str()));
    req.csr.validate()?;
    req.curve = a.curve.unwrap_or(crate::hsm::ec::Curve::P256);
    if let Some(l) = &a.key_label {
        if l.is_empty() {
            return Err(Error::input("--key-label must not be empty"));
        }
        req.key_label = l.clone();
    }
    // Log in before any AWS call: a wrong PIN or missing token fails first, with nothing recorded.
    let session = HsmSession::connect(&g.connect_options())?;
    let keys = SessionKeys::new(&session)?;
    run_one(a, g, ca, opts, req, Some(keys))
}

/// One device, after the local checks: with `keys` (the HSM) or, for a device CSR, without.
fn run_one(
    a: Args,
    g: &Global,
    ca: crate::pca::ids::CaArn,
    opts: crate::pca::issue::IssueOptions,
    req: DeviceRequest,
    keys: Option<SessionKeys<'_>>,
) -> Result<()> {
    let device = req.device.clone();
    let out_dir = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let json = g.json;
    // One device is paced like a batch: after a throttle its buckets slow down too.
    let aws_opts = crate::pca::aws::AwsOptions {
        shaper: Some(crate::pca::ratelimit::Shaper::new(
            crate::pca::ratelimit::RateLimits {
                issue_tps: a.issue_tps,
                get_tps: a.get_tps,
                ..Default::default()
            },
        )?),
        ..a.aws.options()
    };
    let p = block_on(async {
        let clients = AwsClients::load(&aws_opts).await?;
        let issuer = Issuer::new(&clients, &a.aws.table, &ca, opts).await?;
        let mut say = |s: &Step| {
            if !json {
                println!("[{device}] {s}");
            }
        };
        match keys {
            Some(mut k) => provision_device(&issuer, &mut k, &req, &mut say).await,
            None => provision_device(&issuer, &mut NoHsm, &req, &mut say).await,
        }
    })??;
    let files = write_cert_files(&out_dir, &device, &p.issued.cert_pem, &p.issued.chain_pem)?;
    if !json {
        print_bytes(
            format!(
                "[{device}] files written: {}, {}\n",
                files.cert.display(),
                files.chain.display()
            )
            .as_bytes(),
        )?;
    }
    print_issued(
        g,
        &p.issued,
        &files,
        serde_json::json!({
            "key_label": (p.key != KeyOutcome::Device).then_some(&p.key_label),
            "key": p.key,
        }),
    )
}

/// A usage or manifest error, found before anything ran (the CLI exits with status 2).
fn usage(e: Error) -> Error {
    Error::Usage(e.one_line())
}

/// Ends the process at once with status 130 (second Ctrl-C), after flushing stdout and stderr.
///
/// `_exit` rather than `std::process::exit` (or returning to `main`): `exit` runs the C exit
/// handlers, and SoftHSM's tear down the module under any PKCS#11 call still running in a worker
/// thread (SIGSEGV, and a half-made key object on the token). The workers are halted first
/// ([`HsmPool::halt`]), so no PKCS#11 call is running here; `_exit` also skips everything else a
/// normal exit would do with the runtime still busy. What is lost is only what a rerun resumes:
/// the registry and the token are left as after a crash between two steps.
fn exit_now_interrupted() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes no pointers and never returns; it ends the process without running
    // exit handlers, which is the point (see above).
    unsafe { libc::_exit(130) }
}

/// How long a second Ctrl-C waits for the HSM jobs in progress (a key generation, a CSR
/// signature: milliseconds on SoftHSM2) before ending the process anyway.
const HALT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `provision --manifest FILE`: batch provisioning (see [`crate::pca::batch`]).
fn run_manifest(a: Args, manifest: PathBuf, g: &Global) -> Result<()> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use crate::pca::aws::AwsOptions;
    use crate::pca::batch::{run_batch, BatchOptions};
    use crate::pca::ids::CaArn;
    use crate::pca::issue::IssueOptions;
    use crate::pca::ratelimit::{RateLimits, Shaper};
    use crate::pca::validity::ValiditySpec;

    // 1. Everything local, before the HSM or AWS: exit 2 on any error.
    let ca = CaArn::parse(&a.ca_arn).map_err(usage)?;
    let validity = ValiditySpec::parse(&a.validity).map_err(usage)?;
    let curve = a.curve.unwrap_or(crate::hsm::ec::Curve::P256);
    if let Some(d) = &a.out_dir {
        crate::fsutil::check_out_dir(d, "--out-dir").map_err(usage)?;
    }
    let limits = RateLimits {
        issue_tps: a.issue_tps,
        get_tps: a.get_tps,
        ..RateLimits::default()
    };
    let shaper = Shaper::new(limits).map_err(usage)?;
    let info = crate::pca::manifest::validate(&manifest).map_err(usage)?;
    if a.plan {
        return run_plan(&a, manifest, ca, validity, &info, g);
    }
    let concurrency = usize::from(a.concurrency);
    let in_flight = match a.in_flight {
        Some(n) => usize::from(n),
        None => ((a.issue_tps * 2.0).ceil() as usize).clamp((4 * concurrency).max(8), 256),
    };

    // 2. The HSM, only when some device needs an HSM key: log in once (a wrong PIN fails here,
    // before any AWS call), then the workers.
    let hsm = if info.csrs < info.devices {
        Some(open_pool(g, concurrency)?)
    } else {
        None
    };
    let pool = hsm.as_ref().map(|(_, p)| p.clone());

    let opts = BatchOptions {
        manifest,
        ca: ca.clone(),
        issue: IssueOptions {
            template: a.template,
            validity,
            wait: std::time::Duration::from_secs(a.wait_secs.max(1)),
            recommission: a.recommission,
            ..IssueOptions::default()
        },
        table: a.aws.table.clone(),
        in_flight,
        out_dir: a.out_dir.clone(),
        retry_failed: a.retry_failed,
        curve,
        json: g.json,
        progress: true,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let notify = Arc::new(tokio::sync::Notify::new());
    let aws_opts = AwsOptions {
        shaper: Some(shaper.clone()),
        ..a.aws.options()
    };
    let res = block_on(async {
        let signals = interrupt_handler(stop.clone(), notify.clone(), pool.clone())?;
        let r = async {
            let clients = AwsClients::load(&aws_opts).await?;
            run_batch(
                &opts,
                &info,
                &clients,
                pool.clone(),
                Some(&shaper),
                stop,
                notify,
            )
            .await
        }
        .await;
        signals.abort();
        r
    })?;
    // Workers end (sessions close) before the module is finalised with the main session.
    drop(pool);
    if let Some((main, pool)) = hsm {
        drop(pool);
        drop(main);
    }
    batch_outcome(&res?, g)
}

/// Logs in once on the main session (a wrong PIN fails here, before any AWS call) and starts
/// `workers` HSM workers on the same token.
fn open_pool(
    g: &Global,
    workers: usize,
) -> Result<(HsmSession, std::sync::Arc<crate::pca::hsm_pool::HsmPool>)> {
    let copts = g.connect_options();
    let mut main = HsmSession::open(&copts)?;
    let pin = copts.pin.get(main.token_label())?;
    main.login_with_pin(&pin)?;
    let token_serial = main.token().serial.clone();
    let pool =
        crate::pca::hsm_pool::HsmPool::start(main.module(), Some(&token_serial), &pin, workers)?;
    Ok((main, std::sync::Arc::new(pool)))
}

/// `provision --manifest M --plan`: reads the registry and the CA, prints the plan, writes
/// nothing; no PKCS#11 module is loaded.
fn run_plan(
    a: &Args,
    manifest: PathBuf,
    ca: crate::pca::ids::CaArn,
    validity: crate::pca::validity::ValiditySpec,
    info: &crate::pca::manifest::ManifestInfo,
    g: &Global,
) -> Result<()> {
    use crate::pca::plan::{plan, PlanInput};
    let input = PlanInput {
        manifest,
        ca,
        validity,
        issue_tps: a.issue_tps,
        hsm_key_capacity: a.hsm_key_capacity,
        table: a.aws.table.clone(),
        recommission: a.recommission,
    };
    let aws_opts = a.aws.options();
    let p = block_on(async {
        let clients = AwsClients::load(&aws_opts).await?;
        plan(&clients, &input, info).await
    })??;
    if g.json {
        return print_bytes(format!("{}\n", serde_json::json!(p)).as_bytes());
    }
    let mut out = format!(
        "plan for {} devices ({} with a device CSR, {} with an HSM key):\n  already issued: {}\n  to issue: {} ({} IssueCertificate calls)\n  HSM key pairs to create: at most {} ({} key objects)\n",
        p.devices,
        p.csrs,
        p.devices - p.csrs,
        p.already_issued,
        p.to_issue,
        p.issue_calls,
        p.hsm_keys_to_create,
        p.hsm_keys_to_create * 2
    );
    if p.decommissioned > 0 {
        out.push_str(&format!(
            "  decommissioned (refused): {}\n",
            p.decommissioned
        ));
    }
    out.push_str(&format!(
        "  estimated time: {:.1} s at {} IssueCertificate/s\n  estimated cost: ${:.2} (general-purpose CA tiers; {} certificates of this CA recorded this month)\n",
        p.estimated_seconds, a.issue_tps, p.estimated_cost_usd, p.ca_certificates_this_month
    ));
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    print_bytes(out.as_bytes())
}

/// Handles Ctrl-C during a batch: the first stops new devices (`stop`, `notify`), the second
/// halts the HSM workers between PKCS#11 calls and ends the process with 130 at once.
pub(crate) fn interrupt_handler(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    notify: std::sync::Arc<tokio::sync::Notify>,
    pool: Option<std::sync::Arc<crate::pca::hsm_pool::HsmPool>>,
) -> Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    // One SIGINT stream for the whole run: a second signal is never lost between two waits.
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot handle SIGINT", e))?;
    Ok(tokio::spawn(async move {
        sigint.recv().await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        notify.notify_one();
        eprintln!("interrupt: no new devices; finishing the ones in flight (Ctrl-C again to exit now; a rerun resumes)");
        sigint.recv().await;
        eprintln!("second interrupt: exiting now; rerun the same command to resume");
        if pool.is_some_and(|p| !p.halt(HALT_LIMIT)) {
            eprintln!(
                "warning: an HSM call did not end within {} s; exiting anyway",
                HALT_LIMIT.as_secs()
            );
        }
        exit_now_interrupted();
    }))
}

/// Prints the batch summary and turns it into the command's outcome (exit decided in main).
fn batch_outcome(s: &crate::pca::batch::Summary, g: &Global) -> Result<()> {
    use crate::pca::batch::summary_text;
    if g.json {
        print_bytes(format!("{}\n", serde_json::json!({ "summary": s })).as_bytes())?;
    } else {
        print_bytes(summary_text(s).as_bytes())?;
    }
    if s.interrupted {
        return Err(Error::Interrupted);
    }
    if let Some(why) = &s.stopped {
        return Err(Error::Other(format!(
            "{} of {} devices failed; {why}",
            s.failed, s.devices
        )));
    }
    if s.failed > 0 {
        let first = s
            .failures
            .first()
            .map(|f| format!(" (first: {} line {}: {})", f.device_id, f.line, f.error))
            .unwrap_or_default();
        return Err(Error::Other(format!(
            "{} of {} devices failed{first}; rerun with --retry-failed",
            s.failed, s.devices
        )));
    }
    Ok(())
}
