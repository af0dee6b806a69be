//! `hsm-demo provision --ca-arn ARN --device-id ID`: the whole flow for one device, step by step.

use crate::cli::common::print_bytes;
use crate::cli::pca::{block_on, print_issued, AwsArgs, IssueCommon, SubjectArgs};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::session::HsmSession;
use crate::pca::aws::AwsClients;
use crate::pca::issue::Issuer;
use crate::pca::output::write_cert_files;
use crate::pca::provision::{provision_device, DeviceRequest, SessionKeys, Step};

const AFTER_HELP: &str = "\
Steps: registry look-up → intent → key in the HSM (label device-<id>: created if absent, reused if
present) → CSR signed in the HSM → IssueCertificate (idempotency token) → wait → record in DynamoDB
→ <out-dir>/<id>.cert.pem and <id>.chain.pem. Rerunning it — after success, a crash or Ctrl-C, or
while another process runs it — never issues a second certificate for the device.

Examples:
  export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=us-east-1 HSM_DEMO_PIN=123456
  hsm-demo provision --ca-arn $CA_ARN --device-id device-42
  hsm-demo provision --ca-arn $CA_ARN --device-id device-43 --validity 12h --template server --san-dns d43.example.org
  hsm-demo --json provision --ca-arn $CA_ARN --device-id device-42 --out-dir certs";

/// `provision` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Issuance options.
    #[command(flatten)]
    pub common: IssueCommon,
    /// Subject (CN defaults to the device id).
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// HSM key label [default: device-<id>]
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,
    /// Curve for a new key: p256 or p384
    #[arg(long, default_value = "p256", value_name = "CURVE")]
    pub curve: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Runs `provision`.
pub fn run(a: Args, g: &Global) -> Result<()> {
    let (ca, device, opts) = a.common.validate()?;
    let mut req = DeviceRequest::new(device.clone());
    req.csr = a.subject.request(Some(device.as_str()));
    req.csr.validate()?;
    req.curve = crate::hsm::ec::Curve::parse(&a.curve)?;
    if let Some(l) = &a.key_label {
        if l.is_empty() {
            return Err(Error::input("--key-label must not be empty"));
        }
        req.key_label = l.clone();
    }
    // Log in before any AWS call: a wrong PIN or missing token fails first, with nothing recorded.
    let session = HsmSession::connect(&g.connect_options())?;
    let out_dir = a.common.out_dir.clone();
    let json = g.json;
    let p = block_on(async {
        let clients = AwsClients::load(&a.aws.options()).await?;
        let issuer = Issuer::new(&clients, &a.aws.table, &ca, opts).await?;
        let mut keys = SessionKeys(&session);
        let mut say = |s: &Step| {
            if !json {
                println!("[{device}] {s}");
            }
        };
        provision_device(&issuer, &mut keys, &req, &mut say).await
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
        serde_json::json!({"key_label": p.key_label, "key": p.key}),
    )
}
