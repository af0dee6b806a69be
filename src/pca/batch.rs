//! Batch provisioning (`provision --manifest`): a fleet manifest streamed through a bounded
//! pipeline — reader → at most `in_flight` devices in flight (async, AWS side) → an HSM worker
//! pool (`concurrency` sessions) — with client-side rate limits on ACM PCA, progress, a summary,
//! resumability and scale-out through the registry.
//!
//! ```text
//!  manifest ──(blocking reader, bounded queue)──► device tasks (≤ in_flight)
//!                                                   │ provision_device: begin (Query/claim)
//!                                                   │   ├─ HSM: PoolKeys → HsmPool (N threads/sessions)
//!                                                   │   └─ complete: IssueCertificate ─┐ token buckets
//!                                                   │        wait + GetCertificate ────┘ (ratelimit.rs)
//!                                                   ▼        record (TransactWriteItems)
//!                                             reporter: counters, failed list (bounded), JSON lines
//! ```
//!
//! - Memory is flat in the number of devices: the reader holds one line, the queue and the task
//!   set are bounded, finished devices leave only counters behind (and at most
//!   [`MAX_FAILURES_KEPT`] failure reasons; the rest are counted and carry FAILED markers in the
//!   registry). Devices another runner holds, and devices AWS kept throttling for the whole retry
//!   budget, are deferred (kept in memory — in a single-runner batch within the quota there are
//!   none) and retried after the first pass.
//! - Resumable: each device goes through the same intent state machine as single-device
//!   `provision`, so a rerun after Ctrl-C, SIGKILL or a failure skips recorded devices, completes
//!   stored ARNs and reissues nothing.
//! - Scale-out: each runner starts a large manifest at a random entry and wraps round, and in the
//!   first pass a device whose intent is held by another live runner is not waited for but
//!   deferred; runners on one manifest therefore spread over different devices, and the registry's
//!   conditional writes guarantee no device is issued twice.
//! - Ctrl-C: feeding stops, in-flight devices finish (each is recorded atomically or left
//!   resumable), the summary is printed and the caller exits 130; a second Ctrl-C exits at once
//!   (state is then exactly as after SIGKILL: resumable).
//! - Failures do not stop the batch (but [`MAX_CONSECUTIVE_FAILURES`] failures in a row with no
//!   success do: the cause is then global — endpoint, credentials, CA — not per device).

use std::collections::HashMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::pca::aws::AwsClients;
use crate::pca::failed::{clear_failed, get_failed, mark_failed};
use crate::pca::hsm_pool::{HsmPool, PoolKeys};
use crate::pca::ids::CaArn;
use crate::pca::issue::{IssueOptions, Issued, Issuer, Template};
use crate::pca::manifest::{Entry, ManifestInfo, ManifestReader};
use crate::pca::output::write_cert_files;
use crate::pca::provision::{provision_device, DeviceRequest, KeyOutcome, NoHsm};
use crate::pca::ratelimit::Shaper;

/// Failure reasons kept for the summary; further failures are only counted.
pub const MAX_FAILURES_KEPT: usize = 100;
/// This many failures in a row, with no success in the run, stop the batch.
pub const MAX_CONSECUTIVE_FAILURES: u64 = 50;
/// Interval of the plain progress lines when stderr is not a terminal.
pub const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What the batch needs besides the clients and the HSM pool.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// The manifest (already validated).
    pub manifest: PathBuf,
    /// Issuing CA.
    pub ca: CaArn,
    /// Issuance options; `template` is the default for entries without one.
    pub issue: IssueOptions,
    /// Registry table.
    pub table: String,
    /// Devices in flight at once (AWS side).
    pub in_flight: usize,
    /// Write `<id>.cert.pem` / `<id>.chain.pem` here.
    pub out_dir: Option<PathBuf>,
    /// Only devices with a FAILED marker.
    pub retry_failed: bool,
    /// Curve of new keys.
    pub curve: Curve,
    /// One JSON object per device on stdout (+ a summary object).
    pub json: bool,
    /// Show progress (bar on a terminal, plain lines otherwise) on stderr.
    pub progress: bool,
}

/// How a device ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Issued and recorded by this run.
    Issued,
    /// It already had its certificate (earlier run, or another runner).
    AlreadyPresent,
    /// This attempt failed.
    Failed,
    /// `--retry-failed`: the device has no FAILED marker, so it was not touched.
    Skipped,
    /// `renew`: the device's certificate is not due for renewal (or was renewed too recently):
    /// nothing was written.
    NotDue,
}

/// What a [`DeviceJob`] did with one device.
#[derive(Debug)]
pub struct JobDone {
    /// Outcome (not `Failed`: a failure is the job's `Err`).
    pub status: Status,
    /// The device's certificate, when the job issued or found one to report.
    pub issued: Option<Issued>,
    /// What happened to the key.
    pub key: Option<KeyOutcome>,
}

/// A per-device job run by the pipeline instead of provisioning (`renew` is one): the same
/// workers, rate limits, deferral of devices another runner holds ([`Error::HeldByAnotherRunner`]
/// from the first pass, whose issuer never waits), progress, JSON lines, Ctrl-C and summary.
pub trait DeviceJob: Send + Sync {
    /// Runs the job for one manifest entry with the pass's issuer and the HSM pool.
    fn run<'a>(
        &'a self,
        issuer: &'a Issuer,
        pool: &'a HsmPool,
        entry: &'a Entry,
    ) -> Pin<Box<dyn Future<Output = Result<JobDone>> + Send + 'a>>;
}

/// One device's result (printed, counted, then dropped).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceResult {
    /// Device id.
    pub device_id: String,
    /// Manifest line.
    pub line: u64,
    /// Outcome.
    pub status: Status,
    /// Serial (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Certificate ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_arn: Option<String>,
    /// What happened to the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyOutcome>,
    /// Whether this run called IssueCertificate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub called_issue: bool,
    /// Files written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<crate::pca::output::CertFiles>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A failure kept for the summary.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Failure {
    /// Device id.
    pub device_id: String,
    /// Manifest line.
    pub line: u64,
    /// Reason (one line).
    pub error: String,
}

/// The end-of-run summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Devices in the manifest.
    pub devices: u64,
    /// Issued by this run.
    pub issued: u64,
    /// Already provisioned.
    pub already_present: u64,
    /// Failed.
    pub failed: u64,
    /// Not touched (`--retry-failed`: no FAILED marker).
    pub skipped: u64,
    /// `renew`: not due for renewal.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_due: u64,
    /// Not started because the run was interrupted or stopped.
    pub not_started: u64,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// The run stopped early for this reason (consecutive failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Wall time (s).
    pub elapsed_s: f64,
    /// Devices finished per second.
    pub rate_per_s: f64,
    /// IssueCertificate calls made by this run.
    pub issue_calls: u64,
    /// Devices deferred because another runner held them or AWS kept throttling them (then
    /// retried).
    pub deferred: u64,
    /// Transient HSM errors retried.
    pub hsm_retries: u64,
    /// Throttling answers absorbed (retried) per operation.
    pub throttled: HashMap<String, u64>,
    /// Failures (at most [`MAX_FAILURES_KEPT`]).
    pub failures: Vec<Failure>,
    /// Failures not listed.
    pub failures_not_listed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Devices that ended issued, already present or (`renew`) not due.
    pub fn done(&self) -> u64 {
        self.issued + self.already_present + self.not_due
    }
}

struct Ctx {
    clients: AwsClients,
    table: String,
    /// Per template: (first pass: never waits for a peer, deferred pass: waits).
    issuers: Vec<(Template, Issuer, Issuer)>,
    default_template: Template,
    /// `None`: every device of the manifest brings its own CSR (no module loaded).
    pool: Option<Arc<HsmPool>>,
    out_dir: Option<PathBuf>,
    retry_failed: bool,
    curve: Curve,
    owner: String,
    job: Option<Arc<dyn DeviceJob>>,
}

/// Whether the first pass defers the device to the deferred pass rather than failing it: a live
/// runner holds its intent (begin with peer_wait = 0) or took it over between our claim and our
/// parameters; or AWS kept throttling one of its calls for the whole retry budget — runners
/// scaled out on one account briefly ask for more than the quota until their rate controllers
/// settle, and a device must not fail for that while the fleet is still being worked through.
/// A throttled IssueCertificate issued nothing (its intent is released), so retrying it later is
/// a new claim; a throttled GetCertificate leaves the stored ARN to resume.
fn is_busy(e: &Error) -> bool {
    match e {
        Error::HeldByAnotherRunner { .. } | Error::LostIntent { .. } => true,
        Error::StoredKeyNotFound { .. } => true,
        Error::Aws { code: Some(c), .. } => crate::pca::aws::is_throttling_code(c),
        _ => false,
    }
}

enum Outcome {
    Result(DeviceResult),
    Busy(Entry),
}

async fn one(ctx: Arc<Ctx>, entry: Entry, deferred_pass: bool) -> Outcome {
    let mut res = DeviceResult {
        device_id: entry.device.to_string(),
        line: entry.line,
        status: Status::Failed,
        serial: None,
        cert_arn: None,
        key: None,
        called_issue: false,
        files: None,
        error: None,
    };
    let had_marker = if ctx.retry_failed {
        match get_failed(&ctx.clients, &ctx.table, &entry.device).await {
            Ok(Some(_)) => true,
            Ok(None) => {
                res.status = Status::Skipped;
                return Outcome::Result(res);
            }
            Err(e) => {
                res.error = Some(e.one_line());
                return Outcome::Result(res);
            }
        }
    } else {
        false
    };
    let template = entry.template.unwrap_or(ctx.default_template);
    let Some((_, first, patient)) = ctx.issuers.iter().find(|(t, _, _)| *t == template) else {
        res.error = Some(format!("internal: no issuer for template {template:?}"));
        return Outcome::Result(res);
    };
    let issuer = if deferred_pass { patient } else { first };
    let done = match (&ctx.job, &ctx.pool) {
        (Some(job), Some(pool)) => job.run(issuer, pool, &entry).await,
        (Some(_), None) => Err(crate::error::Error::Other(
            "internal: this job needs the HSM, and no module was loaded".into(),
        )),
        (None, _) => provision_one(&ctx, issuer, &entry).await,
    };
    match done {
        Ok(JobDone {
            status,
            issued: None,
            key,
        }) => {
            res.status = status;
            res.key = key;
        }
        Ok(JobDone {
            status,
            issued: Some(issued),
            key,
        }) => {
            res.status = status;
            res.serial = Some(issued.record.serial.clone());
            res.cert_arn = Some(issued.record.cert_arn.clone());
            res.key = key;
            res.called_issue = issued.called_issue;
            if let Some(dir) = &ctx.out_dir {
                match write_cert_files(dir, &entry.device, &issued.cert_pem, &issued.chain_pem) {
                    Ok(f) => res.files = Some(f),
                    Err(e) => {
                        // The certificate is recorded; only the local copy is missing. A rerun
                        // rewrites it from the registry without issuing.
                        res.status = Status::Failed;
                        res.error = Some(format!(
                            "issued and recorded (serial {}), but writing its files failed: {}",
                            issued.record.serial,
                            e.one_line()
                        ));
                    }
                }
            }
            if had_marker && res.status != Status::Failed {
                if let Err(e) = clear_failed(&ctx.clients, &ctx.table, &entry.device).await {
                    tracing::warn!(device = %entry.device, "could not clear the FAILED marker: {e}");
                }
            }
        }
        Err(e) if !deferred_pass && is_busy(&e) => return Outcome::Busy(entry),
        Err(e) => res.error = Some(e.one_line()),
    }
    if res.status == Status::Failed {
        let msg = res.error.clone().unwrap_or_default();
        if let Err(e) = mark_failed(&ctx.clients, &ctx.table, &entry.device, &msg, &ctx.owner).await
        {
            tracing::warn!(device = %entry.device, "could not record the FAILED marker: {e}");
        }
    }
    Outcome::Result(res)
}

/// The pipeline's default job: provision the entry's device.
async fn provision_one(ctx: &Ctx, issuer: &Issuer, entry: &Entry) -> Result<JobDone> {
    let req = DeviceRequest {
        device: entry.device.clone(),
        csr: entry.csr.clone(),
        key_label: entry.device.key_label(),
        curve: ctx.curve,
        device_csr: entry.device_csr.clone(),
    };
    let p = match &ctx.pool {
        Some(pool) => provision_device(issuer, &mut PoolKeys(pool), &req, &mut |_| {}).await?,
        None => provision_device(issuer, &mut NoHsm, &req, &mut |_| {}).await?,
    };
    Ok(JobDone {
        status: if p.issued.fresh {
            Status::Issued
        } else {
            Status::AlreadyPresent
        },
        issued: Some(p.issued),
        key: Some(p.key),
    })
}

/// Progress and per-device output.
struct Reporter {
    json: bool,
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    last_plain: Instant,
    start: Instant,
    total: u64,
}

impl Reporter {
    fn new(total: u64, json: bool, progress: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (progress && tty).then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Reporter {
            json,
            bar,
            plain: progress && !tty,
            last_plain: Instant::now(),
            start: Instant::now(),
            total,
        }
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn device(&mut self, r: &DeviceResult, s: &Summary) {
        if self.json {
            if let Ok(text) = serde_json::to_string(r) {
                let out = std::io::stdout();
                let mut lock = out.lock();
                let _ = writeln!(lock, "{text}");
                let _ = lock.flush();
            }
        }
        if r.status == Status::Failed && !self.json {
            self.note(&format!(
                "device {} (line {}) failed: {}",
                r.device_id,
                r.line,
                r.error.as_deref().unwrap_or("?")
            ));
        }
        let finished = s.done() + s.failed + s.skipped;
        if let Some(b) = &self.bar {
            b.set_position(finished);
            b.set_message(format!(
                "issued {} present {} failed {}",
                s.issued, s.already_present, s.failed
            ));
        } else if self.plain && self.last_plain.elapsed() >= PLAIN_PROGRESS_EVERY {
            self.last_plain = Instant::now();
            eprintln!(
                "{}",
                progress_line(s, finished, self.total, self.start.elapsed())
            );
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn progress_line(s: &Summary, finished: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = finished as f64 / secs;
    let eta = if rate > 0.0 {
        let left = total.saturating_sub(finished) as f64 / rate;
        format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64)
    } else {
        "?".into()
    };
    format!(
        "progress: {finished}/{total} devices ({:.0}%), issued {}, already present {}, failed {}, {rate:.1}/s, ETA {eta}",
        100.0 * finished as f64 / total.max(1) as f64,
        s.issued,
        s.already_present,
        s.failed
    )
}

/// Runs the batch. `stop` is set by the caller's Ctrl-C handling (or by this function on a
/// second signal it does not see); the returned summary says whether the run was interrupted.
pub async fn run_batch(
    opts: &BatchOptions,
    info: &ManifestInfo,
    clients: &AwsClients,
    pool: Option<Arc<HsmPool>>,
    shaper: Option<&Shaper>,
    stop: Arc<AtomicBool>,
    stop_notify: Arc<tokio::sync::Notify>,
) -> Result<Summary> {
    run_batch_with(opts, info, clients, pool, shaper, stop, stop_notify, None).await
}

/// [`run_batch`] with another per-device job than provisioning (`None`: provisioning).
#[allow(clippy::too_many_arguments)]
pub async fn run_batch_with(
    opts: &BatchOptions,
    info: &ManifestInfo,
    clients: &AwsClients,
    pool: Option<Arc<HsmPool>>,
    shaper: Option<&Shaper>,
    stop: Arc<AtomicBool>,
    stop_notify: Arc<tokio::sync::Notify>,
    job: Option<Arc<dyn DeviceJob>>,
) -> Result<Summary> {
    let start = Instant::now();
    let issuers = issuers(opts, info, clients).await?;
    if let Some((_, a, _)) = issuers.first() {
        a.registry().check_table().await?;
    }
    let ctx = Arc::new(Ctx {
        clients: clients.clone(),
        table: opts.table.clone(),
        issuers,
        default_template: opts.issue.template,
        pool: pool.clone(),
        out_dir: opts.out_dir.clone(),
        retry_failed: opts.retry_failed,
        curve: opts.curve,
        owner: crate::pca::owner::current().to_string(),
        job,
    });
    let in_flight = opts.in_flight.max(1);
    let start_at = start_entry(info.devices, in_flight);
    let (rx, reader) = spawn_reader(opts.manifest.clone(), in_flight, start_at, stop.clone());
    let mut drive = Drive {
        ctx,
        in_flight,
        stop: stop.clone(),
        stop_notify,
        set: JoinSet::new(),
        tally: Tally::new(info.devices, opts),
        fatal: None,
    };
    // First pass: the manifest.
    drive.pass(Feed::Manifest(rx), Pass::First).await;
    // Deferred pass: devices another runner held; now wait for it (bounded) and pick up its result.
    let deferred = std::mem::take(&mut drive.tally.deferred);
    drive
        .pass(Feed::Deferred(deferred.into_iter()), Pass::Deferred)
        .await;
    let _ = reader.await;
    drive.tally.rep.finish();

    let mut s = drive.tally.s;
    s.interrupted = stop.load(Ordering::Relaxed);
    let finished = s.done() + s.failed + s.skipped;
    s.not_started = s.devices.saturating_sub(finished);
    s.elapsed_s = start.elapsed().as_secs_f64();
    s.rate_per_s = finished as f64 / s.elapsed_s.max(1e-3);
    s.hsm_retries = pool.as_ref().map_or(0, |p| p.retried());
    s.throttled = shaper.map(Shaper::stats).unwrap_or_default().throttled;
    if let Some(e) = drive.fatal {
        return Err(e);
    }
    Ok(s)
}

/// One issuer pair per template the run can use (CA loaded once each): the first pass never
/// waits for a peer, the deferred pass does.
async fn issuers(
    opts: &BatchOptions,
    info: &ManifestInfo,
    clients: &AwsClients,
) -> Result<Vec<(Template, Issuer, Issuer)>> {
    let mut templates = info.templates.clone();
    if !templates.contains(&opts.issue.template) {
        templates.push(opts.issue.template);
    }
    let mut issuers = Vec::new();
    for t in templates {
        let first = IssueOptions {
            template: t,
            peer_wait: Duration::ZERO,
            ..opts.issue.clone()
        };
        let patient = IssueOptions {
            template: t,
            ..opts.issue.clone()
        };
        let a = Issuer::new(clients, &opts.table, &opts.ca, first).await?;
        let b = Issuer::new(clients, &opts.table, &opts.ca, patient).await?;
        issuers.push((t, a, b));
    }
    Ok(issuers)
}

/// Where this runner starts reading a manifest of `devices` entries with `in_flight` devices in
/// flight: at entry 0 when the manifest fits in about two windows, otherwise at a random entry
/// (then on to the end and round from the start). Runners started together on one manifest would
/// otherwise walk it in lockstep: each device one of them holds is deferred by the others and read
/// again after their first pass. From different starting points they work on different devices
/// until they reach ones already done, which cost a read each.
fn start_entry(devices: u64, in_flight: usize) -> usize {
    let devices = usize::try_from(devices).unwrap_or(usize::MAX);
    if devices <= 2 * in_flight {
        return 0;
    }
    rand::random_range(0..devices)
}

/// The reader: a blocking thread streaming entries into a bounded queue until the manifest
/// ends, an error, or `stop` — entries `start..` first, then `..start` (a second read of the
/// manifest; [`ManifestReader::open`] reads a pipe only once per process).
fn spawn_reader(
    path: PathBuf,
    capacity: usize,
    start: usize,
    stop: Arc<AtomicBool>,
) -> (mpsc::Receiver<Result<Entry>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<Result<Entry>>(capacity);
    let reader = tokio::task::spawn_blocking(move || {
        // (skip, take): entries read and dropped, then entries sent (None: to the end).
        for (skip, take) in [(start, None), (0, Some(start))] {
            if take == Some(0) {
                return;
            }
            let mut r = match ManifestReader::open(&path) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            let mut index = 0usize;
            loop {
                if stop.load(Ordering::Relaxed) || take.is_some_and(|t| index >= t) {
                    break;
                }
                match r.next_entry() {
                    Ok(Some(_)) if index < skip => {}
                    Ok(Some(e)) => {
                        if tx.blocking_send(Ok(e)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                index += 1;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    });
    (rx, reader)
}

/// Where a pass takes its devices from.
enum Feed {
    /// The manifest reader's queue.
    Manifest(mpsc::Receiver<Result<Entry>>),
    /// The devices the first pass deferred.
    Deferred(std::vec::IntoIter<Entry>),
}

impl Feed {
    async fn next(&mut self) -> Option<Result<Entry>> {
        match self {
            Feed::Manifest(rx) => rx.recv().await,
            Feed::Deferred(it) => it.next().map(Ok),
        }
    }
}

/// The two passes of a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The manifest; devices held by a live runner are deferred, and a run of failures with no
    /// success stops the batch.
    First,
    /// The deferred devices, now waiting (bounded) for their holder.
    Deferred,
}

/// Counts outcomes into the summary and reports each device.
struct Tally {
    s: Summary,
    rep: Reporter,
    deferred: Vec<Entry>,
    consecutive_failures: u64,
}

impl Tally {
    fn new(devices: u64, opts: &BatchOptions) -> Self {
        Tally {
            s: Summary {
                devices,
                ..Summary::default()
            },
            rep: Reporter::new(devices, opts.json, opts.progress),
            deferred: Vec::new(),
            consecutive_failures: 0,
        }
    }

    fn add(&mut self, o: Outcome) {
        let s = &mut self.s;
        let r = match o {
            Outcome::Busy(e) => {
                s.deferred += 1;
                self.deferred.push(e);
                return;
            }
            Outcome::Result(r) => r,
        };
        if r.called_issue {
            s.issue_calls += 1;
        }
        match r.status {
            Status::Issued => s.issued += 1,
            Status::AlreadyPresent => s.already_present += 1,
            Status::Skipped => s.skipped += 1,
            Status::NotDue => s.not_due += 1,
            Status::Failed => {
                s.failed += 1;
                if s.failures.len() < MAX_FAILURES_KEPT {
                    s.failures.push(Failure {
                        device_id: r.device_id.clone(),
                        line: r.line,
                        error: r.error.clone().unwrap_or_default(),
                    });
                } else {
                    s.failures_not_listed += 1;
                }
            }
        }
        if r.status == Status::Failed {
            self.consecutive_failures += 1;
        } else if r.status != Status::Skipped {
            self.consecutive_failures = 0;
        }
        self.rep.device(&r, s);
    }

    /// Stops the run after [`MAX_CONSECUTIVE_FAILURES`] failures in a row with no success.
    fn check_consecutive_failures(&mut self) {
        let s = &mut self.s;
        let n = self.consecutive_failures;
        if n >= MAX_CONSECUTIVE_FAILURES && s.done() == 0 && s.stopped.is_none() {
            let last = s
                .failures
                .last()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            s.stopped = Some(format!(
                "stopped after {n} consecutive failures with no success (last: {last})"
            ));
        }
    }
}

/// The device tasks in flight and what decides when to stop feeding them.
struct Drive {
    ctx: Arc<Ctx>,
    in_flight: usize,
    stop: Arc<AtomicBool>,
    stop_notify: Arc<tokio::sync::Notify>,
    set: JoinSet<Outcome>,
    tally: Tally,
    fatal: Option<Error>,
}

impl Drive {
    /// Feeds devices from `feed` (at most `in_flight` at once) until it ends or the run stops,
    /// and waits for the devices in flight.
    async fn pass(&mut self, mut feed: Feed, pass: Pass) {
        let mut feed_done = false;
        loop {
            let stopping = self.stop.load(Ordering::Relaxed)
                || self.tally.s.stopped.is_some()
                || self.fatal.is_some();
            if self.set.is_empty() && (stopping || feed_done) {
                break;
            }
            let can_feed = !stopping && !feed_done && self.set.len() < self.in_flight;
            tokio::select! {
                biased;
                _ = self.stop_notify.notified() => {}
                Some(j) = self.set.join_next(), if !self.set.is_empty() => {
                    match j {
                        Ok(o) => self.tally.add(o),
                        Err(e) => self.fatal = Some(Error::Other(format!("internal: a device task panicked: {e}"))),
                    }
                    if pass == Pass::First {
                        self.tally.check_consecutive_failures();
                    }
                }
                e = feed.next(), if can_feed => match e {
                    Some(Ok(entry)) => {
                        self.set.spawn(one(self.ctx.clone(), entry, pass == Pass::Deferred));
                    }
                    Some(Err(e)) => self.fatal = Some(e),
                    None => feed_done = true,
                },
            }
        }
    }
}

/// The human summary (stdout).
pub fn summary_text(s: &Summary) -> String {
    let mut out = format!(
        "{} devices in {:.1} s ({:.1}/s): issued {}, already present {}, failed {}",
        s.devices, s.elapsed_s, s.rate_per_s, s.issued, s.already_present, s.failed
    );
    if s.skipped > 0 {
        out.push_str(&format!(", skipped {} (no FAILED marker)", s.skipped));
    }
    if s.not_due > 0 {
        out.push_str(&format!(", not due {}", s.not_due));
    }
    if s.not_started > 0 {
        out.push_str(&format!(", not started {}", s.not_started));
    }
    out.push('\n');
    if !s.throttled.is_empty() {
        let mut t: Vec<_> = s.throttled.iter().collect();
        t.sort();
        out.push_str(&format!(
            "throttling absorbed (retried with backoff): {}\n",
            t.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for f in &s.failures {
        out.push_str(&format!(
            "  failed: {} (line {}): {}\n",
            f.device_id, f.line, f.error
        ));
    }
    if s.failures_not_listed > 0 {
        out.push_str(&format!(
            "  … and {} more failures (FAILED markers in the registry; rerun with --retry-failed)\n",
            s.failures_not_listed
        ));
    }
    if let Some(why) = &s.stopped {
        out.push_str(&format!("{why}\n"));
    }
    if s.interrupted {
        out.push_str(
            "interrupted: rerun the same command to resume (recorded devices are skipped, nothing is issued twice)\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(path: PathBuf, start: usize) -> Vec<String> {
        let (mut rx, reader) = spawn_reader(path, 4, start, Arc::new(AtomicBool::new(false)));
        let mut ids = Vec::new();
        while let Some(e) = rx.recv().await {
            ids.push(e.unwrap().device.to_string());
        }
        reader.await.unwrap();
        ids
    }

    #[tokio::test]
    async fn the_reader_starts_at_any_entry_and_wraps_round_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.csv");
        let ids: Vec<String> = (0..7).map(|i| format!("d-{i}")).collect();
        std::fs::write(&path, format!("device_id\n{}\n", ids.join("\n"))).unwrap();
        for start in 0..7 {
            let mut want = ids[start..].to_vec();
            want.extend_from_slice(&ids[..start]);
            assert_eq!(read_all(path.clone(), start).await, want, "start {start}");
        }
    }

    #[test]
    fn small_manifests_keep_their_order_and_large_ones_start_inside() {
        assert_eq!(start_entry(100, 50), 0);
        assert_eq!(start_entry(0, 50), 0);
        let starts: std::collections::HashSet<usize> =
            (0..200).map(|_| start_entry(600, 50)).collect();
        assert!(starts.iter().all(|&s| s < 600));
        assert!(starts.len() > 50, "random starts: {}", starts.len());
    }
}
