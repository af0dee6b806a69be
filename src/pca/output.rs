//! Certificate files: `<dir>/<device-id>.cert.pem` and `<dir>/<device-id>.chain.pem`, each written
//! atomically (temp file + rename). The private key never leaves the HSM, so there is no key file.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsutil::{create_out_dir, write_atomic};
use crate::pca::ids::DeviceId;

/// The paths written for a device.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertFiles {
    /// The leaf certificate.
    pub cert: PathBuf,
    /// The CA chain (issuing CA first, root last).
    pub chain: PathBuf,
}

/// Paths for `device` under `dir`.
pub fn paths(dir: &Path, device: &DeviceId) -> CertFiles {
    CertFiles {
        cert: dir.join(format!("{device}.cert.pem")),
        chain: dir.join(format!("{device}.chain.pem")),
    }
}

/// Writes both files (overwriting: a rerun rewrites the same bytes), creating `dir` (and its
/// parents) when it does not exist yet.
pub fn write_cert_files(
    dir: &Path,
    device: &DeviceId,
    cert_pem: &str,
    chain_pem: &str,
) -> Result<CertFiles> {
    create_out_dir(dir)?;
    let p = paths(dir, device);
    write_atomic(&p.cert, ensure_nl(cert_pem).as_bytes(), true)?;
    write_atomic(&p.chain, ensure_nl(chain_pem).as_bytes(), true)?;
    Ok(p)
}

fn ensure_nl(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}
