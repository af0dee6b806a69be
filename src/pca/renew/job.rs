//! `renew --manifest` / `renew --all` through the batch pipeline ([`crate::pca::batch`]): the
//! per-device job, and the device list of `--all`.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::pca::batch::{DeviceJob, JobDone};
use crate::pca::hsm_pool::{HsmPool, PoolKeys};
use crate::pca::issue::Issuer;
use crate::pca::manifest::Entry;
use crate::pca::registry::{CertStatus, Registry};

use super::{renew_device, KeySource, Policy, RenewRequest};

/// The renewal of one manifest entry.
#[derive(Clone, Debug)]
pub struct RenewJob {
    /// Selection (the min-interval guard on).
    pub policy: Policy,
    /// Keep the current HSM key.
    pub reuse_key: bool,
    /// Revoke superseded certificates once their renewal is recorded.
    pub revoke_superseded: bool,
    /// Curve of rotated keys.
    pub curve: Curve,
    /// Take the subject from the manifest entry (`--manifest`) rather than from the current
    /// certificate (`--all`).
    pub subject_from_manifest: bool,
}

impl DeviceJob for RenewJob {
    fn run<'a>(
        &'a self,
        issuer: &'a Issuer,
        pool: &'a HsmPool,
        entry: &'a Entry,
    ) -> Pin<Box<dyn Future<Output = Result<JobDone>> + Send + 'a>> {
        Box::pin(async move {
            let req = RenewRequest {
                device: entry.device.clone(),
                subject: self.subject_from_manifest.then(|| entry.csr.clone()),
                curve: self.curve,
                key: if self.reuse_key {
                    KeySource::Reuse
                } else {
                    KeySource::Rotate
                },
                policy: self.policy.clone(),
                revoke_superseded: self.revoke_superseded,
            };
            let r = renew_device(issuer, &mut PoolKeys(pool), &req).await?;
            Ok(JobDone {
                status: r.status,
                issued: r.issued,
                key: r.key,
            })
        })
    }
}

/// `--all`: every device whose CURRENT certificate is ISSUED (one paginated Scan), written as a
/// one-column manifest in `dir` so that the batch reads it like any other (returns its path and
/// the number of devices). The caller removes the file.
pub async fn all_devices_manifest(registry: &Registry, dir: &Path) -> Result<(PathBuf, usize)> {
    let devices = registry.list(Some(CertStatus::Issued)).await?;
    let path = dir.join(format!(
        "hsm-demo-renew-all-{}-{}.csv",
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut f = std::fs::File::create_new(&path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    let mut text = String::from("device_id\n");
    for d in &devices {
        text.push_str(&d.device_id);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok((path, devices.len()))
}
