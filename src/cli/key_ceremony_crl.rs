//! `hsm-demo key-ceremony crl`: the offline root's CRL, signed in the HSM.

use std::io::Write;
use std::path::PathBuf;

use crate::ceremony::config::{DEFAULT_OUT_DIR, DEFAULT_ROOT_CERT, DEFAULT_TRANSCRIPT};
use crate::ceremony::crl::{
    self, parse_next_update, CrlRequest, Reason, CRL_STEPS, DEFAULT_NEXT_UPDATE,
};
use crate::ceremony::operators_or_default;
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::is_stdout;

const CRL_AFTER_HELP: &str = "\
Examples:
  hsm-demo key-ceremony crl --out ceremony/root-1.crl                     # the initial, empty root CRL
  hsm-demo key-ceremony crl --out root-2.crl --revoke intermediate.pem --reason key-compromise
  hsm-demo key-ceremony crl --out - --next-update 6mo > root.crl          # PEM on stdout, steps on stderr
  hsm-demo key-ceremony crl --out root-3.crl --revoke old.pem --dry-run   # check and print, sign nothing
  openssl crl -in ceremony/root-1.crl -CAfile ceremony/root.pem -verify -noout

The root key signs, in the HSM, a CRL (v2) with AKI, cRLNumber (one more than the last CRL the
transcript records; the first is 1) and a critical issuingDistributionPoint onlyContainsCACerts.
It lists every certificate an earlier CRL listed plus the --revoke ones: each must be a CA
certificate issued by this root. thisUpdate is now; nextUpdate (--next-update, at most 12 months
later) must lie within the root's validity. Everything is checked before the token is opened; the
step and a new seal are appended to the transcript. Reasons: unspecified (no reasonCode),
key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation,
privilege-withdrawn, aa-compromise.";

/// `key-ceremony crl` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = CRL_AFTER_HELP)]
pub struct CrlArgs {
    /// Where to write the CRL (PEM unless --der; must not exist); `-` prints PEM on stdout
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// A subordinate CA certificate (PEM) to revoke (repeatable)
    #[arg(long = "revoke", value_name = "CERT.pem")]
    pub revoke: Vec<PathBuf>,

    /// Reason for the --revoke certificates [default: unspecified]
    #[arg(long, value_name = "REASON")]
    pub reason: Option<String>,

    /// nextUpdate after thisUpdate (now), e.g. 12mo, 6mo, 90d; at most 12 months
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_NEXT_UPDATE)]
    pub next_update: String,

    /// The key ceremony's output directory (root.pem, transcript.jsonl)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT_DIR)]
    pub ceremony_dir: PathBuf,

    /// Root certificate [default: <ceremony-dir>/root.pem]
    #[arg(long, value_name = "FILE")]
    pub root_cert: Option<PathBuf>,

    /// Ceremony transcript [default: <ceremony-dir>/transcript.jsonl]
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,

    /// Root key label [default: the key that sealed the transcript]
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,

    /// Write DER instead of PEM
    #[arg(long)]
    pub der: bool,

    /// Check everything and print what would be signed; open no module, write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// An operator present (repeatable) [default: $USER]
    #[arg(long = "operator", value_name = "NAME")]
    pub operators: Vec<String>,
}

fn request(a: CrlArgs) -> Result<CrlRequest> {
    if a.reason.is_some() && a.revoke.is_empty() {
        return Err(Error::input(
            "--reason applies to --revoke certificates: give at least one --revoke",
        ));
    }
    let reason = match &a.reason {
        Some(r) => Reason::parse(r)?,
        None => Reason::UNSPECIFIED,
    };
    let dir = &a.ceremony_dir;
    Ok(CrlRequest {
        root_cert: a.root_cert.unwrap_or_else(|| dir.join(DEFAULT_ROOT_CERT)),
        transcript: a.transcript.unwrap_or_else(|| dir.join(DEFAULT_TRANSCRIPT)),
        next_update: parse_next_update(&a.next_update)?,
        out: a.out,
        der: a.der,
        key_label: a.key_label,
        revoke: a.revoke,
        reason,
        operators: operators_or_default(&a.operators),
    })
}

/// Runs `key-ceremony crl`. With `--out -` the CRL goes to stdout and the steps to stderr.
pub fn run(a: CrlArgs, g: &Global) -> Result<()> {
    let dry_run = a.dry_run;
    let req = request(a)?;
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let to_stdout = is_stdout(&req.out);
    let mut log: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    let say = |log: &mut dyn Write, s: String| {
        writeln!(log, "{s}").map_err(|e| Error::io("cannot write the step log", e))
    };
    say(
        &mut *log,
        format!("[Step 1/{CRL_STEPS}] Check the root certificate, the transcript and the certificates to revoke"),
    )?;
    let plan = crl::plan_crl(&req, &mut *log)?;
    crl::print_crl_plan(&req, &plan, &mut *log)?;
    if dry_run {
        return say(
            &mut *log,
            "Dry run: no module loaded, nothing signed, nothing written".into(),
        );
    }
    let outcome = crl::sign_crl(&req, plan, &g.connect_options(), &mut *log)?;
    if to_stdout {
        let mut so = std::io::stdout().lock();
        so.write_all(outcome.pem.as_bytes())
            .and_then(|_| so.flush())
            .map_err(|e| Error::io("cannot write the CRL to stdout", e))?;
    }
    Ok(())
}
