//! `hsm-demo pca …`: CSRs from HSM keys, issuance through AWS Private CA, the DynamoDB registry.
//!
//! Only `pca csr` touches the HSM alone; every other subcommand creates a tokio runtime and loads
//! the AWS configuration here, inside the command (HSM-only commands never do).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::common::{print_bytes, print_json, KeyArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::{check_output_force, out_file, write_atomic};
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::aws::{AwsClients, AwsOptions};
use crate::pca::csr::{build_csr, Csr, CsrRequest};
use crate::pca::ids::{CaArn, DeviceId, Serial};
use crate::pca::issue::{IssueOptions, Issued, Issuer, Template};
use crate::pca::output::write_cert_files;
use crate::pca::reconcile::{reconcile, IntentCheck, IDEMPOTENCY_WINDOW};
use crate::pca::registry::{CertStatus, Registry, DEFAULT_TABLE};
use crate::pca::revoke::{parse_reason, revoke};
use crate::pca::validity::ValiditySpec;

const AFTER_HELP: &str = "\
AWS configuration is the standard one: AWS_REGION, AWS_PROFILE, the credential chain, and
AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566 for the local stand-in: `make aws-up`).

Examples:
  hsm-demo pca init-table
  hsm-demo pca csr --label device-42 --cn device-42 --san-uri spiffe://example.org/device/42 --out d42.csr
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-42 --csr d42.csr --validity 30d --out-dir certs
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-43 --label device-43 --validity 12h
  hsm-demo pca show --device-id device-42
  hsm-demo --json pca list --status issued
  hsm-demo pca revoke --serial 4c:1f:0a:… --reason key-compromise
  hsm-demo pca reconcile";

/// `pca` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The pca subcommand.
    #[command(subcommand)]
    pub command: PcaCommand,
}

/// The `pca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PcaCommand {
    /// Build a CSR signed by an HSM key (the key never leaves the HSM)
    Csr(CsrArgs),
    /// Issue a device certificate (idempotent, crash-safe) and record it in the registry
    Issue(IssueArgs),
    /// Revoke a certificate by serial and update the registry
    Revoke(RevokeArgs),
    /// Show a device's certificates and intents, or a serial's record
    Show(ShowArgs),
    /// List devices' current certificates
    List(ListArgs),
    /// Create the registry table (on-demand capacity) if it does not exist
    InitTable(InitTableArgs),
    /// Report unfinished issuances (intents not ISSUED) and what each means
    Reconcile(ReconcileArgs),
}

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
}

impl AwsArgs {
    /// The AWS client options.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            max_attempts: self.max_attempts,
            retry_budget: Duration::from_secs(self.retry_budget_secs),
            attempt_timeout: Duration::from_secs(self.attempt_timeout_secs),
            ..AwsOptions::default()
        }
    }
}

/// Issuance options shared by `pca issue` and `provision`.
#[derive(Debug, Clone, clap::Args)]
pub struct IssueCommon {
    /// ARN of the issuing CA (arn:aws:acm-pca:<region>:<account>:certificate-authority/<uuid>)
    #[arg(long, env = "HSM_DEMO_CA_ARN", value_name = "ARN")]
    pub ca_arn: String,

    /// Device id: 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'
    #[arg(long, value_name = "ID")]
    pub device_id: String,

    /// Certificate template: client (clientAuth), server (serverAuth) or plain (EndEntityCertificate)
    #[arg(long, value_enum, default_value_t = Template::Client)]
    pub template: Template,

    /// Validity: 12h, 30d, 2w, 6mo, 1y (a bare 'm' is refused: 30min or 30mo; sub-day values are sent as ABSOLUTE; minimum 1h; must end before the CA's NotAfter)
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub validity: String,

    /// Directory for <device-id>.cert.pem and <device-id>.chain.pem
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out_dir: PathBuf,

    /// Maximum seconds to wait for the certificate to be issued (certificate_issued waiter)
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub wait_secs: u64,
}

impl IssueCommon {
    /// Validates everything that can be checked locally.
    pub fn validate(&self) -> Result<(CaArn, DeviceId, IssueOptions)> {
        let device = DeviceId::parse(&self.device_id)?;
        let ca = CaArn::parse(&self.ca_arn)?;
        let validity = ValiditySpec::parse(&self.validity)?;
        if !self.out_dir.is_dir() {
            return Err(Error::input(format!(
                "--out-dir {} is not a directory",
                self.out_dir.display()
            )));
        }
        let opts = IssueOptions {
            template: self.template,
            validity,
            wait: Duration::from_secs(self.wait_secs.max(1)),
            ..IssueOptions::default()
        };
        Ok((ca, device, opts))
    }
}

/// Subject and SANs.
#[derive(Debug, Clone, clap::Args)]
pub struct SubjectArgs {
    /// Subject common name (empty subject needs a SAN)
    #[arg(long, value_name = "NAME")]
    pub cn: Option<String>,

    /// DNS subjectAltName (repeatable)
    #[arg(long, value_name = "NAME")]
    pub san_dns: Vec<String>,

    /// URI subjectAltName, e.g. spiffe://example.org/device/42 (repeatable)
    #[arg(long, value_name = "URI")]
    pub san_uri: Vec<String>,
}

impl SubjectArgs {
    /// As a CSR request (CN defaults to `default_cn` when given and no SAN-only request).
    pub fn request(&self, default_cn: Option<&str>) -> CsrRequest {
        CsrRequest {
            cn: self.cn.clone().or_else(|| default_cn.map(str::to_string)),
            san_dns: self.san_dns.clone(),
            san_uri: self.san_uri.clone(),
        }
    }
}

/// `pca csr`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca csr --label device-42 --cn device-42 --out d42.csr
  hsm-demo pca csr --label device-42 --san-uri spiffe://example.org/device/42   # empty subject, critical SAN
  openssl req -in d42.csr -noout -verify")]
pub struct CsrArgs {
    /// The HSM key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Subject.
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Write the PEM CSR to FILE (atomically; '-' = stdout). FILE must be absent or a regular file
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite FILE if it exists
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// `pca issue`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-42 --csr d42.csr
  hsm-demo pca issue --ca-arn $CA_ARN --device-id device-43 --label device-43 --validity 12h --template server
  hsm-demo --json pca issue --ca-arn $CA_ARN --device-id device-42 --csr d42.csr --out-dir certs

Rerunning the same command never issues a second certificate: the idempotency token is a hash of
the CA ARN, the device id and the CSR's content, and the registry's intent record resumes an
interrupted run from the stored certificate ARN.")]
pub struct IssueArgs {
    /// Issuance options.
    #[command(flatten)]
    pub common: IssueCommon,
    /// PEM or DER CSR file
    #[arg(long, value_name = "FILE", conflicts_with_all = ["label", "id", "uri"], required_unless_present_any = ["label", "id", "uri"])]
    pub csr: Option<PathBuf>,
    /// Or: build the CSR from this HSM key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Subject for a CSR built from an HSM key (CN defaults to the device id).
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `pca revoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca revoke --serial 4C:1F:0A:9B --reason key-compromise
  hsm-demo pca revoke --serial 4c1f0a9b --reason superseded --ca-arn $CA_ARN")]
pub struct RevokeArgs {
    /// Certificate serial in hex (colons optional)
    #[arg(long, value_name = "HEX")]
    pub serial: String,
    /// unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn, aa-compromise
    #[arg(long, value_name = "REASON")]
    pub reason: String,
    /// The issuing CA, when several CAs issued the same serial
    #[arg(long, value_name = "ARN")]
    pub ca_arn: Option<String>,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `pca show`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca show --device-id device-42
  hsm-demo --json pca show --serial 4c:1f:0a:9b")]
pub struct ShowArgs {
    /// Device id (one Query)
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "serial",
        required_unless_present = "serial"
    )]
    pub device_id: Option<String>,
    /// Serial in hex (one Query)
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Also print the certificate PEM (device look-up)
    #[arg(long)]
    pub pem: bool,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `pca list`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca list
  hsm-demo --json pca list --status revoked")]
pub struct ListArgs {
    /// Only this status: issued or revoked
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `pca init-table`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca init-table
  HSM_DEMO_TABLE=my-registry hsm-demo pca init-table")]
pub struct InitTableArgs {
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `pca reconcile`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  hsm-demo pca reconcile
  hsm-demo --json pca reconcile --device-id device-42

Exits non-zero when a PossibleOrphan intent is found (an IssueCertificate whose result was never
stored, older than AWS's idempotency window).")]
pub struct ReconcileArgs {
    /// Only this device (one Query) instead of a Scan of all open intents
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// AWS's idempotency window to assume, in seconds (documented as 1-5 minutes)
    #[arg(long, default_value_t = IDEMPOTENCY_WINDOW.as_secs(), value_name = "SECS")]
    pub window_secs: u64,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
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

/// Runs `pca`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    match args.command {
        PcaCommand::Csr(a) => run_csr(a, g),
        PcaCommand::Issue(a) => run_issue(a, g),
        PcaCommand::Revoke(a) => run_revoke(a, g),
        PcaCommand::Show(a) => run_show(a, g),
        PcaCommand::List(a) => run_list(a, g),
        PcaCommand::InitTable(a) => run_init_table(a, g),
        PcaCommand::Reconcile(a) => run_reconcile(a, g),
    }
}

fn csr_json(csr: &Csr) -> serde_json::Value {
    serde_json::json!({
        "pem": csr.pem,
        "subject": csr.subject,
        "sans": csr.sans,
        "public_key_sha256": crate::pca::token::sha256_hex(&csr.spki),
    })
}

fn run_csr(a: CsrArgs, g: &Global) -> Result<()> {
    let req = a.subject.request(None);
    req.validate()?;
    let (spec, opts) = a.key.resolve(g)?;
    let out = out_file(a.out.as_ref());
    if let Some(out) = out {
        check_output_force(out, a.force)?;
    }
    let session = HsmSession::connect(&opts)?;
    let signer = HsmSigner::new(&session, &spec)?;
    let csr = build_csr(&req, &signer)?;
    if let Some(out) = out {
        write_atomic(out, csr.pem.as_bytes(), a.force)?;
    }
    if g.json {
        let mut v = csr_json(&csr);
        if let Some(out) = out {
            v["file"] = serde_json::json!(out);
        }
        print_json(&v)
    } else if let Some(out) = out {
        print_bytes(
            format!(
                "CSR written to {} (subject '{}')\n",
                out.display(),
                csr.subject
            )
            .as_bytes(),
        )
    } else {
        print_bytes(csr.pem.as_bytes())
    }
}

/// Prints an issued certificate (text or JSON) after its files were written.
pub fn print_issued(
    g: &Global,
    issued: &Issued,
    files: &crate::pca::output::CertFiles,
    extra: serde_json::Value,
) -> Result<()> {
    if g.json {
        let mut v = serde_json::to_value(issued)
            .map_err(|e| Error::Other(format!("cannot serialise the result: {e}")))?;
        v["files"] = serde_json::json!(files);
        if let serde_json::Value::Object(m) = extra {
            for (k, x) in m {
                v[k] = x;
            }
        }
        return print_json(&v);
    }
    let r = &issued.record;
    let head = if issued.fresh {
        "certificate issued and recorded"
    } else {
        "certificate already issued (no new IssueCertificate)"
    };
    print_bytes(
        format!(
            "{head}\n  device:    {}\n  serial:    {}\n  cert ARN:  {}\n  valid:     {} .. {}\n  files:     {}, {}\n",
            r.device_id,
            r.serial,
            r.cert_arn,
            r.not_before,
            r.not_after,
            files.cert.display(),
            files.chain.display()
        )
        .as_bytes(),
    )
}

fn run_issue(a: IssueArgs, g: &Global) -> Result<()> {
    let (ca, device, opts) = a.common.validate()?;
    // The CSR first: a bad file or HSM problem fails before any AWS call.
    let csr = match &a.csr {
        Some(path) => Csr::from_file(path)?,
        None => {
            let req = a.subject.request(Some(device.as_str()));
            req.validate()?;
            let (spec, hopts) = a.key.resolve(g)?;
            let session = HsmSession::connect(&hopts)?;
            let signer = HsmSigner::new(&session, &spec)?;
            build_csr(&req, &signer)?
        }
    };
    let out_dir = a.common.out_dir.clone();
    let aws = a.aws.clone();
    let issued = block_on(async move {
        let clients = AwsClients::load(&aws.options()).await?;
        let issuer = Issuer::new(&clients, &aws.table, &ca, opts).await?;
        issuer.issue(&device, &csr).await
    })??;
    let device = DeviceId::parse(&issued.record.device_id)?;
    let files = write_cert_files(&out_dir, &device, &issued.cert_pem, &issued.chain_pem)?;
    print_issued(g, &issued, &files, serde_json::json!({}))
}

fn run_revoke(a: RevokeArgs, g: &Global) -> Result<()> {
    let serial = Serial::parse(&a.serial)?;
    let reason = parse_reason(&a.reason)?;
    if let Some(ca) = &a.ca_arn {
        CaArn::parse(ca)?;
    }
    let r = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        revoke(&clients, &reg, &serial, a.ca_arn.as_deref(), reason).await
    })??;
    if g.json {
        print_json(&serde_json::to_value(&r).map_err(|e| Error::Other(e.to_string()))?)
    } else if r.changed {
        print_bytes(
            format!(
                "revoked serial {} of device {} ({})\n",
                r.serial.serial, r.serial.device_id, r.reason
            )
            .as_bytes(),
        )
    } else {
        print_bytes(format!("serial {} was already revoked\n", r.serial.serial).as_bytes())
    }
}

fn run_show(a: ShowArgs, g: &Global) -> Result<()> {
    let device = a.device_id.as_deref().map(DeviceId::parse).transpose()?;
    let serial = a.serial.as_deref().map(Serial::parse).transpose()?;
    let aws = a.aws.clone();
    if let Some(device) = device {
        let st = block_on(async move {
            let clients = AwsClients::load(&aws.options()).await?;
            Registry::new(&clients, &aws.table).device(&device).await
        })??;
        let dev = a.device_id.unwrap_or_default();
        if st.current.is_none() && st.history.is_empty() && st.intents.is_empty() {
            return Err(Error::Registry(format!(
                "device {dev} is not in the registry"
            )));
        }
        if g.json {
            let mut v = serde_json::to_value(&st).map_err(|e| Error::Other(e.to_string()))?;
            if a.pem {
                if let Some(cur) = &st.current {
                    let pem = st
                        .history
                        .iter()
                        .find(|h| h.generation == cur.generation)
                        .and_then(|h| h.cert_pem.clone());
                    v["cert_pem"] = serde_json::json!(pem);
                }
            }
            return print_json(&v);
        }
        let mut s = format!("device {dev}\n");
        match &st.current {
            Some(c) => s.push_str(&format!(
                "  current:  serial {} {} (generation {}, valid to {}, CA {})\n",
                c.serial,
                c.status.as_str(),
                c.generation,
                c.not_after,
                c.ca_arn
            )),
            None => s.push_str("  current:  none\n"),
        }
        for h in &st.history {
            s.push_str(&format!(
                "  history:  #{} serial {} {} issued {}{}\n",
                h.generation,
                h.serial,
                h.status.as_str(),
                h.issued_at,
                h.revoked_at
                    .as_ref()
                    .map(|r| format!(" revoked {r}"))
                    .unwrap_or_default()
            ));
        }
        for i in &st.intents {
            s.push_str(&format!(
                "  intent:   #{} {:?} since {}{}\n",
                i.generation,
                i.state,
                i.created_at,
                i.cert_arn
                    .as_ref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ));
        }
        if a.pem {
            if let Some(pem) = st.current.as_ref().and_then(|c| {
                st.history
                    .iter()
                    .find(|h| h.generation == c.generation)
                    .and_then(|h| h.cert_pem.clone())
            }) {
                s.push_str(&pem);
            }
        }
        print_bytes(s.as_bytes())
    } else {
        let serial = serial.ok_or_else(|| Error::input("pass --device-id or --serial"))?;
        let shown = serial.clone();
        let v = block_on(async move {
            let clients = AwsClients::load(&aws.options()).await?;
            Registry::new(&clients, &aws.table).by_serial(&serial).await
        })??;
        if v.is_empty() {
            return Err(Error::Registry(format!(
                "serial {shown} is not in the registry"
            )));
        }
        if g.json {
            return print_json(&serde_json::to_value(&v).map_err(|e| Error::Other(e.to_string()))?);
        }
        let mut s = String::new();
        for m in &v {
            s.push_str(&format!(
                "serial {}: device {} {} (generation {}, issued {}, valid to {}, CA {})\n",
                m.serial,
                m.device_id,
                m.status.as_str(),
                m.generation,
                m.issued_at,
                m.not_after,
                m.ca_arn
            ));
        }
        print_bytes(s.as_bytes())
    }
}

fn run_list(a: ListArgs, g: &Global) -> Result<()> {
    let status = match a.status.as_deref() {
        None => None,
        Some(s) => Some(CertStatus::parse(s).ok_or_else(|| {
            Error::input(format!(
                "unknown --status '{s}': expected issued or revoked"
            ))
        })?),
    };
    let v = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        Registry::new(&clients, &a.aws.table).list(status).await
    })??;
    if g.json {
        return print_json(&serde_json::to_value(&v).map_err(|e| Error::Other(e.to_string()))?);
    }
    let mut s = String::new();
    for r in &v {
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            r.device_id,
            r.serial,
            r.status.as_str(),
            r.not_after
        ));
    }
    if v.is_empty() {
        s.push_str("no devices\n");
    }
    print_bytes(s.as_bytes())
}

fn run_init_table(a: InitTableArgs, g: &Global) -> Result<()> {
    let table = a.aws.table.clone();
    let created = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        Registry::new(&clients, &a.aws.table).init_table().await
    })??;
    if g.json {
        print_json(&serde_json::json!({"table": table, "created": created}))
    } else if created {
        print_bytes(format!("created table {table} (on-demand, pk/sk)\n").as_bytes())
    } else {
        print_bytes(format!("table {table} already exists\n").as_bytes())
    }
}

fn run_reconcile(a: ReconcileArgs, g: &Global) -> Result<()> {
    let device = a.device_id.as_deref().map(DeviceId::parse).transpose()?;
    let findings = block_on(async move {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let reg = Registry::new(&clients, &a.aws.table);
        reconcile(&reg, device.as_ref(), Duration::from_secs(a.window_secs)).await
    })??;
    let orphans = findings
        .iter()
        .filter(|f| f.check == IntentCheck::PossibleOrphan)
        .count();
    if g.json {
        print_json(&serde_json::to_value(&findings).map_err(|e| Error::Other(e.to_string()))?)?;
    } else {
        let mut s = String::new();
        for f in &findings {
            s.push_str(&format!(
                "{} #{} {:?} ({} s old): {}\n",
                f.intent.device_id, f.intent.generation, f.check, f.age_secs, f.advice
            ));
        }
        if findings.is_empty() {
            s.push_str("no unfinished issuances\n");
        }
        print_bytes(s.as_bytes())?;
    }
    if orphans > 0 {
        return Err(Error::Registry(format!(
            "{orphans} possible orphaned issuance(s): IssueCertificate may have issued certificates that are not recorded (see the advice above)"
        )));
    }
    Ok(())
}
