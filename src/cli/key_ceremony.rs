//! `hsm-demo key-ceremony` (the offline root CA key ceremony), `key-ceremony verify-transcript`
//! and `key-ceremony sign-intermediate` (`key-ceremony crl` is in [`crate::cli::key_ceremony_crl`]).

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::ceremony::config::{
    validation_error, CeremonyConfig, CertConfig, KeyConfig, OutputConfig, SubjectConfig, Validity,
    DEFAULT_CN, DEFAULT_KEY_LABEL, DEFAULT_O, DEFAULT_OUT_DIR, DEFAULT_PATH_LEN, DEFAULT_ROOT_CERT,
    DEFAULT_ROOT_VALIDITY, DEFAULT_TRANSCRIPT,
};
use crate::ceremony::journal::journal_path;
use std::io::Write;

use crate::ceremony::{self, SignIntermediateRequest};
use crate::cli::common::print_json;
use crate::cli::Global;
use crate::error::{Error, Result};

const AFTER_HELP: &str = "\
The four steps: [Step 1/4] check the token and the operators, [Step 2/4] generate the root key
in the HSM (sensitive, never extractable), [Step 3/4] create the self-signed root certificate
(CA:TRUE pathLen, keyCertSign+cRLSign, SKI) signed in the HSM, [Step 4/4] write root.pem and a
hash-chained transcript sealed with the root key. An existing root key or output file is refused.
The root key pair's CKA_ID carries the key-ceremony mark: only key-ceremony signs with it (sign,
provision and pca refuse it), and provision refuses a token that holds it (keep the root on its
own token). A ceremony killed half-way leaves DIR/key-ceremony.journal; `--recover` removes what
it created (never a completed root), after which the ceremony runs again.

Examples:
  HSM_DEMO_PIN=123456 hsm-demo key-ceremony                  # ./ceremony/root.pem, ./ceremony/transcript.jsonl
  hsm-demo key-ceremony --dry-run                            # print the plan, touch nothing
  hsm-demo key-ceremony --curve p384 --validity 25y --operator alice --operator bob --out-dir /media/usb/ceremony
  hsm-demo key-ceremony --config ceremony.toml --dry-run     # validate the config completely
  hsm-demo key-ceremony --recover                            # undo a ceremony that was killed half-way
  hsm-demo key-ceremony verify-transcript ceremony/transcript.jsonl --cert ceremony/root.pem
  hsm-demo key-ceremony sign-intermediate --csr intermediate.csr --out intermediate.pem
  hsm-demo key-ceremony crl --out ceremony/root-1.crl [--revoke intermediate.pem --reason key-compromise]

Config file (TOML; unknown keys are errors; at least two operators):
  operators = [\"alice\", \"bob\"]
  [key]          label = \"root-ca-key\"   curve = \"p256\"
  [subject]      common_name = \"Example Root CA\"  organization = \"Example\"  country = \"DE\"
  [certificate]  validity = \"20y\"   path_len = 2
  [output]       dir = \"ceremony\"   root_cert = \"root.pem\"   transcript = \"transcript.jsonl\"";

/// `key-ceremony` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = AFTER_HELP)]
pub struct Args {
    /// A later ceremony step (without one: run the key ceremony)
    #[command(subcommand)]
    pub action: Option<Action>,

    /// The ceremony options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of the ceremony itself.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Ceremony config (TOML), validated completely before the token is touched
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate and print the plan; open no module, touch no token, write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Undo a ceremony that was killed half-way (same options as the ceremony): remove the key
    /// objects its journal names, unless its transcript shows it completed
    #[arg(long, conflicts_with = "dry_run")]
    pub recover: bool,

    /// Output directory for root.pem and transcript.jsonl [default: ./ceremony; overrides the config's output.dir]
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Label of the root key [default: root-ca-key]
    #[arg(long, value_name = "LABEL", conflicts_with = "config")]
    pub key_label: Option<String>,

    /// Root key curve: p256 or p384 [default: p256]
    #[arg(long, value_name = "CURVE", conflicts_with = "config")]
    pub curve: Option<String>,

    /// Root certificate validity, Ny or Nd [default: 20y]
    #[arg(long, value_name = "PERIOD", conflicts_with = "config")]
    pub validity: Option<String>,

    /// basicConstraints pathLen of the root [default: 2: root → intermediate (1) → issuing CA (0) → leaf]
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "config",
        allow_negative_numbers = true
    )]
    pub path_len: Option<i64>,

    /// Subject common name [default: hsm-demo Root CA]
    #[arg(long, value_name = "CN", conflicts_with = "config")]
    pub subject_cn: Option<String>,

    /// Subject organisation [default: hsm-demo]
    #[arg(long, value_name = "O", conflicts_with = "config")]
    pub subject_o: Option<String>,

    /// An operator present (repeat for dual control) [default: $USER]
    #[arg(long = "operator", value_name = "NAME", conflicts_with = "config")]
    pub operators: Vec<String>,
}

/// Later ceremony steps.
#[derive(Debug, Clone, Subcommand)]
pub enum Action {
    /// Verify a ceremony transcript: hash chain, every seal's root-key signature, nothing appended
    VerifyTranscript(VerifyArgs),
    /// Sign a subordinate CA's CSR with the HSM root key (CA:TRUE pathLen 1) and record it in the transcript
    SignIntermediate(SignArgs),
    /// Sign the root's CRL in the HSM (revoking subordinate CA certificates) and record it in the transcript
    Crl(crate::cli::key_ceremony_crl::CrlArgs),
}

const VERIFY_AFTER_HELP: &str = "\
Examples:
  hsm-demo key-ceremony verify-transcript ceremony/transcript.jsonl
  hsm-demo key-ceremony verify-transcript ceremony/transcript.jsonl --cert ceremony/root.pem
  hsm-demo key-ceremony verify-transcript t.jsonl --cert root.pem --expect-head 9f86d081…

Without --cert the seals are checked against the root certificate the transcript records (which
proves integrity, not origin); with --cert the transcript must record that certificate. Needs no
HSM and no PIN.";

/// `key-ceremony verify-transcript` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = VERIFY_AFTER_HELP)]
pub struct VerifyArgs {
    /// The transcript (JSON lines)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Root certificate (PEM) whose key must have sealed the transcript
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// The chain head recorded elsewhere (detects a transcript cut back to an earlier seal)
    #[arg(long, value_name = "HEX")]
    pub expect_head: Option<String>,
}

const SIGN_AFTER_HELP: &str = "\
Examples:
  hsm-demo key-ceremony sign-intermediate --csr intermediate.csr --out intermediate.pem
  hsm-demo key-ceremony sign-intermediate --ceremony-dir /media/usb/ceremony --csr pca.csr --out pca.pem --validity 5y
  hsm-demo key-ceremony sign-intermediate --csr pca.csr --out - > pca.pem   # PEM on stdout, steps on stderr
  openssl verify -CAfile ceremony/root.pem intermediate.pem

The CSR (EC P-256/P-384 or RSA >= 2048, e.g. an AWS Private CA SUBORDINATE CA's) must carry a
valid signature; only its subject and key are used. The certificate gets basicConstraints critical
CA:TRUE pathLen 1 (default), keyUsage critical keyCertSign+cRLSign, SKI and AKI, a random serial,
and a validity that must end within the root's. The transcript is verified first; the step and a
new seal by the root key are appended.";

/// `key-ceremony sign-intermediate` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = SIGN_AFTER_HELP)]
pub struct SignArgs {
    /// The subordinate CA's CSR (PEM)
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,

    /// Where to write the signed certificate (PEM; must not exist); `-` prints it on stdout
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

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

    /// Validity of the intermediate, Ny or Nd; must end within the root's
    #[arg(long, value_name = "PERIOD", default_value = ceremony::DEFAULT_INTERMEDIATE_VALIDITY)]
    pub validity: String,

    /// basicConstraints pathLen of the intermediate
    #[arg(long, value_name = "N", default_value_t = ceremony::DEFAULT_INTERMEDIATE_PATH_LEN)]
    pub path_len: u8,

    /// An operator present (repeatable) [default: $USER]
    #[arg(long = "operator", value_name = "NAME")]
    pub operators: Vec<String>,
}

/// Runs `key-ceremony` or one of its steps.
pub fn run(args: Args, g: &Global) -> Result<()> {
    match args.action {
        None => run_ceremony(args.run, g),
        Some(Action::VerifyTranscript(v)) => verify_transcript(v, g),
        Some(Action::SignIntermediate(s)) => sign_intermediate(s, g),
        Some(Action::Crl(c)) => crate::cli::key_ceremony_crl::run(c, g),
    }
}

fn config_from_flags(a: &RunArgs) -> CeremonyConfig {
    CeremonyConfig {
        operators: ceremony::operators_or_default(&a.operators),
        key: KeyConfig {
            label: a
                .key_label
                .clone()
                .unwrap_or_else(|| DEFAULT_KEY_LABEL.into()),
            curve: a.curve.clone().unwrap_or_else(|| "p256".into()),
        },
        subject: SubjectConfig {
            common_name: a.subject_cn.clone().unwrap_or_else(|| DEFAULT_CN.into()),
            organization: Some(a.subject_o.clone().unwrap_or_else(|| DEFAULT_O.into())),
            ..SubjectConfig::default()
        },
        certificate: CertConfig {
            validity: a
                .validity
                .clone()
                .unwrap_or_else(|| DEFAULT_ROOT_VALIDITY.into()),
            path_len: a.path_len.unwrap_or(DEFAULT_PATH_LEN),
        },
        output: OutputConfig {
            dir: DEFAULT_OUT_DIR.into(),
            root_cert: DEFAULT_ROOT_CERT.into(),
            transcript: DEFAULT_TRANSCRIPT.into(),
        },
    }
}

fn run_ceremony(a: RunArgs, g: &Global) -> Result<()> {
    // Everything is validated before the module is even loaded.
    let (mut cfg, min_ops, source) = match &a.config {
        Some(p) => (
            CeremonyConfig::load(p)?,
            2,
            format!("config {}", p.display()),
        ),
        None => (config_from_flags(&a), 1, "options".to_string()),
    };
    if let Some(d) = &a.out_dir {
        cfg.output.dir = d.display().to_string();
    }
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let mut out = std::io::stdout().lock();
    let dir = PathBuf::from(&cfg.output.dir);
    if a.recover {
        // Only the output directory matters: the journal there names everything else (and the
        // outputs may exist, which a new ceremony's plan would refuse).
        ceremony::recover(&dir, &g.connect_options(), &mut out)?;
        return Ok(());
    }
    if !a.dry_run {
        // Before the plan's checks: an interrupted ceremony's outputs are its, and the way out
        // is --recover, not another directory.
        ceremony::refuse_interrupted(&journal_path(&dir))?;
    }
    let plan = cfg
        .validate(min_ops, a.config.as_deref())
        .map_err(|errs| validation_error(&source, &errs))?;
    if a.dry_run {
        use std::io::Write;
        writeln!(
            out,
            "Key ceremony plan (dry run: no module is loaded, no token touched, nothing written):"
        )
        .map_err(|e| Error::io("cannot write to stdout", e))?;
        ceremony::print_plan(&plan, &mut out)?;
        return Ok(());
    }
    ceremony::run_ceremony(&plan, &g.connect_options(), &mut out)?;
    Ok(())
}

fn verify_transcript(v: VerifyArgs, g: &Global) -> Result<()> {
    let expect_head = v
        .expect_head
        .as_deref()
        .map(crate::ceremony::transcript::parse_head)
        .transpose()?;
    let (_, report, root) = ceremony::verify_transcript_file(&v.file, v.cert.as_deref())?;
    if let Some(h) = &expect_head {
        if *h != report.head {
            return Err(Error::Ceremony(format!(
                "the transcript head is {} where {h} was expected: entries were removed from (or added to) its end",
                report.head,
            )));
        }
    }
    if g.json {
        return print_json(&serde_json::json!({
            "ok": true,
            "entries": report.entries,
            "seals": report.seals,
            "head": report.head,
            "key_label": report.key_label,
            "root_subject": root.subject,
            "root_sha256": ceremony::sha256_hex(&root.der),
            "anchored_by_cert": v.cert.is_some(),
            "steps": report.steps,
        }));
    }
    println!(
        "Transcript OK: {} entries, {} seal(s) by '{}' verified, chain intact, nothing after the last seal",
        report.entries, report.seals, report.key_label
    );
    println!(
        "  root:  {} (SHA-256 {}){}",
        root.subject,
        ceremony::fingerprint(&root.der),
        if v.cert.is_some() {
            ""
        } else {
            " - as recorded in the transcript; pass --cert to anchor it"
        }
    );
    println!("  steps: {}", report.steps.join(", "));
    println!("  time:  {} .. {}", report.first_time, report.last_time);
    println!("  head:  {}", report.head);
    Ok(())
}

fn in_dir(dir: &Path, explicit: &Option<PathBuf>, name: &str) -> PathBuf {
    explicit.clone().unwrap_or_else(|| dir.join(name))
}

fn sign_intermediate(s: SignArgs, g: &Global) -> Result<()> {
    let validity =
        Validity::parse(&s.validity).map_err(|e| Error::input(format!("--validity: {e}")))?;
    let req = SignIntermediateRequest {
        root_cert: in_dir(&s.ceremony_dir, &s.root_cert, DEFAULT_ROOT_CERT),
        transcript: in_dir(&s.ceremony_dir, &s.transcript, DEFAULT_TRANSCRIPT),
        csr: s.csr,
        out: s.out,
        key_label: s.key_label,
        validity,
        path_len: s.path_len,
        operators: ceremony::operators_or_default(&s.operators),
    };
    // With `--out -` the certificate is the only thing on stdout; the steps go to stderr.
    let to_stdout = crate::fsutil::is_stdout(&req.out);
    let outcome = if to_stdout {
        ceremony::sign_intermediate(&req, &g.connect_options(), &mut std::io::stderr().lock())?
    } else {
        ceremony::sign_intermediate(&req, &g.connect_options(), &mut std::io::stdout().lock())?
    };
    if to_stdout {
        let mut so = std::io::stdout().lock();
        so.write_all(outcome.pem.as_bytes())
            .and_then(|()| so.flush())
            .map_err(|e| Error::io("cannot write the certificate to stdout", e))?;
    }
    Ok(())
}
