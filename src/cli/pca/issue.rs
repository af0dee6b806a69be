//! `pca issue`: a device certificate for a CSR file or an HSM key.

use std::path::PathBuf;

use crate::cli::aws_args::{block_on, AwsArgs};
use crate::cli::common::KeyArgs;
use crate::cli::issue_args::{print_issued, IssueCommon, SubjectArgs};
use crate::cli::Global;
use crate::error::Result;
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::aws::AwsClients;
use crate::pca::csr::{build_csr, Csr};
use crate::pca::ids::DeviceId;
use crate::pca::issue::Issuer;
use crate::pca::output::write_cert_files;

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

/// Runs `pca issue`.
pub fn run(a: IssueArgs, g: &Global) -> Result<()> {
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
