//! The key ceremony's journal: what a ceremony is about to create, written beside its outputs
//! before the root key pair is generated, so that a ceremony killed half-way can be undone.
//!
//! `key-ceremony` writes `<out-dir>/key-ceremony.journal` (JSON, atomically: temp file + rename)
//! after the token checks and before C_GenerateKeyPair. It names the token (label and serial),
//! the root key's label and CKA_ID (the ceremony mark plus the ceremony id, see
//! [`crate::hsm::role`]) and the output paths; just before the outputs are written it also records
//! the SHA-256 of the root certificate PEM. The journal is removed when the transcript is written
//! (the ceremony is complete), or when an aborted ceremony has destroyed its key pair.
//!
//! A journal on disk therefore means "a ceremony may have left objects behind": a new ceremony in
//! that directory is refused, and `key-ceremony --recover` removes exactly the objects with the
//! journal's CKA_ID (and a root.pem with the journal's SHA-256), never a root whose transcript
//! exists and verifies.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// File name of the journal inside the ceremony's output directory.
pub const JOURNAL_FILE: &str = "key-ceremony.journal";

/// The `format` value of this journal version.
pub const JOURNAL_FORMAT: &str = "hsm-demo key-ceremony journal v1";

/// Largest journal read (a real one is well under 1 KiB).
const MAX_JOURNAL_BYTES: u64 = 64 * 1024;

/// The journal of one ceremony.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// [`JOURNAL_FORMAT`].
    pub format: String,
    /// The ceremony id (32 hex digits).
    pub ceremony_id: String,
    /// CKA_LABEL of the root key pair.
    pub key_label: String,
    /// CKA_ID of both halves, hex.
    pub key_id: String,
    /// Curve name.
    pub curve: String,
    /// Token label.
    pub token_label: String,
    /// Token serial.
    pub token_serial: String,
    /// Root certificate path.
    pub root_cert: PathBuf,
    /// Transcript path.
    pub transcript: PathBuf,
    /// When the ceremony started (RFC 3339).
    pub started: String,
    /// SHA-256 (hex) of the root certificate PEM, once it is about to be written.
    pub root_cert_sha256: Option<String>,
}

/// Where the journal of a ceremony writing into `out_dir` lives.
pub fn journal_path(out_dir: &Path) -> PathBuf {
    out_dir.join(JOURNAL_FILE)
}

impl Journal {
    /// CKA_ID bytes.
    pub fn key_id_bytes(&self) -> Result<Vec<u8>> {
        hex::decode(&self.key_id)
            .map_err(|_| Error::Ceremony("the ceremony journal's key_id is not hex".into()))
    }

    /// Writes a new journal (refused if one exists).
    pub fn create(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_text()?.as_bytes(), false)
    }

    /// Replaces the journal (atomically).
    pub fn update(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_text()?.as_bytes(), true)
    }

    fn to_text(&self) -> Result<String> {
        let mut s = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Other(format!("cannot serialise the ceremony journal: {e}")))?;
        s.push('\n');
        Ok(s)
    }

    /// Reads the journal at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Journal>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        if !meta.is_file() || meta.len() > MAX_JOURNAL_BYTES {
            return Err(Error::Ceremony(format!(
                "{} is not a key-ceremony journal (not a regular file, or larger than {MAX_JOURNAL_BYTES} bytes): inspect it by hand",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let j: Journal = serde_json::from_str(&text).map_err(|e| {
            Error::Ceremony(format!(
                "{} is not a valid key-ceremony journal ({e}): inspect it by hand",
                path.display()
            ))
        })?;
        if j.format != JOURNAL_FORMAT {
            return Err(Error::Ceremony(format!(
                "{} has format '{}' where '{JOURNAL_FORMAT}' was expected",
                path.display(),
                j.format
            )));
        }
        j.key_id_bytes()?;
        Ok(Some(j))
    }
}

/// Removes the journal (absent is fine).
pub fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Journal {
        Journal {
            format: JOURNAL_FORMAT.into(),
            ceremony_id: "00".repeat(16),
            key_label: "root-ca-key".into(),
            key_id: hex::encode(b"hsm-demo/ceremony/00"),
            curve: "P-256".into(),
            token_label: "t".into(),
            token_serial: "s".into(),
            root_cert: "ceremony/root.pem".into(),
            transcript: "ceremony/transcript.jsonl".into(),
            started: "2026-01-01T00:00:00Z".into(),
            root_cert_sha256: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let p = journal_path(d.path());
        assert_eq!(Journal::read(&p).unwrap(), None);
        let mut j = sample();
        j.create(&p).unwrap();
        assert!(
            j.create(&p).is_err(),
            "an existing journal is never replaced by create"
        );
        j.root_cert_sha256 = Some("ab".into());
        j.update(&p).unwrap();
        assert_eq!(Journal::read(&p).unwrap(), Some(j));
        std::fs::write(&p, "{\"format\":\"x\"}").unwrap();
        assert!(Journal::read(&p).is_err());
        remove(&p).unwrap();
        remove(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert!(Journal::read(&p).is_err(), "a directory is not a journal");
    }
}
