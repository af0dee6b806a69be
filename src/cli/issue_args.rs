//! What `pca issue` and `provision` share: issuance options, the subject, printing the result.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::common::{print_bytes, print_json};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::pca::csr::CsrRequest;
use crate::pca::ids::{CaArn, DeviceId};
use crate::pca::issue::{IssueOptions, Issued, Template};
use crate::pca::validity::ValiditySpec;

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

    /// Directory for <device-id>.cert.pem and <device-id>.chain.pem (created, with its parents, when missing)
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
        crate::fsutil::check_out_dir(&self.out_dir, "--out-dir")?;
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
