//! The tamper-evident ceremony transcript.
//!
//! Format: JSON lines (UTF-8, one entry per line, each line ends with `\n`). Every entry is
//!
//! ```json
//! {"seq":0,"time":"2026-11-28T10:00:00Z","step":"ceremony-start","details":{…},"prev":"<64 hex>"}
//! ```
//!
//! - `seq` counts from 0 and increases by one per line;
//! - `prev` is the SHA-256 (hex) of the previous line's exact bytes (without its `\n`); the first
//!   entry has 64 zeros ([`GENESIS`]);
//! - a `seal` entry closes a section: its details are `{"key": <root key label>, "algorithm":
//!   "ecdsa-with-SHA256"|"ecdsa-with-SHA384", "signature": <hex DER ECDSA-Sig-Value>}`, the
//!   signature by the root key over [`seal_message`] (seq, time, prev = the chain head, key,
//!   algorithm). Later ceremony steps (`sign-intermediate`) append entries after a seal and
//!   close them with a new seal; a transcript is valid when the chain is intact, every seal
//!   verifies, and the last entry is a seal.
//!
//! Changing, removing or reordering any entry breaks the chain (the next `prev`) or a seal's
//! signature; an entry appended after the last seal is reported as unsealed; a forged seal needs
//! the root key. Cutting the file back to an EARLIER seal can only be detected against a head
//! recorded elsewhere (`verify-transcript` prints the head; `--expect-head` checks it).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::hsm::ec::{self, Curve};

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The step name of a seal entry.
pub const SEAL_STEP: &str = "seal";
/// Domain separation of the signed seal message.
pub const SEAL_DOMAIN: &str = "hsm-demo ceremony transcript seal v1";

/// One transcript entry (one line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 0, 1, 2, …
    pub seq: u64,
    /// RFC 3339 UTC, whole seconds.
    pub time: String,
    /// Step name, e.g. `key-generated`.
    pub step: String,
    /// Step details (a JSON object).
    pub details: serde_json::Value,
    /// SHA-256 hex of the previous line.
    pub prev: String,
}

/// The details of a seal entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealDetails {
    /// Label of the root key that signed.
    pub key: String,
    /// `ecdsa-with-SHA256` or `ecdsa-with-SHA384`.
    pub algorithm: String,
    /// Hex DER ECDSA-Sig-Value over [`seal_message`].
    pub signature: String,
}

/// The X.509 name of the ECDSA signature algorithm of a curve.
pub fn seal_algorithm(curve: Curve) -> &'static str {
    match curve {
        Curve::P256 => "ecdsa-with-SHA256",
        Curve::P384 => "ecdsa-with-SHA384",
    }
}

/// The bytes a seal signs (hashed with the curve's hash, signed with CKM_ECDSA).
pub fn seal_message(seq: u64, time: &str, prev: &str, key: &str, algorithm: &str) -> Vec<u8> {
    format!(
        "{SEAL_DOMAIN}\nseq={seq}\ntime={time}\nprev={prev}\nkey={key}\nalgorithm={algorithm}\n"
    )
    .into_bytes()
}

/// SHA-256 hex of a line (without its newline).
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Now, UTC, whole seconds, RFC 3339.
pub fn now_rfc3339() -> String {
    let t = OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// A transcript in memory: its exact lines.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    lines: Vec<String>,
}

/// Largest transcript file read, in bytes. A ceremony writes a few KiB and each signed
/// intermediate adds about as much; 16 MiB leaves room for thousands of steps and keeps a
/// hostile file (or `/dev/zero`) from exhausting memory.
pub const MAX_TRANSCRIPT_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a transcript file (at most [`MAX_TRANSCRIPT_BYTES`]) as text.
pub fn read_file(path: &std::path::Path) -> Result<String> {
    crate::fsutil::read_text_bounded(path, "transcript", MAX_TRANSCRIPT_BYTES)
}

/// Parses a chain head given by the user (`--expect-head`): 64 hex digits (a SHA-256), any case,
/// colons allowed; returned in lower case as [`Transcript::head`] prints it.
pub fn parse_head(s: &str) -> Result<String> {
    let h: String = s.trim().chars().filter(|&c| c != ':').collect();
    if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        let shown: String = s.chars().take(80).flat_map(char::escape_default).collect();
        return Err(Error::input(format!(
            "--expect-head '{shown}' is not a transcript head: expected 64 hex digits (a SHA-256, as verify-transcript prints it)"
        )));
    }
    Ok(h.to_ascii_lowercase())
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Self {
        Transcript::default()
    }

    /// Splits a transcript file into lines (structure only: use [`verify`] to check it).
    pub fn parse(text: &str) -> Result<Transcript> {
        if text.is_empty() {
            return Err(Error::Ceremony("the transcript is empty".into()));
        }
        let body = text.strip_suffix('\n').ok_or_else(|| {
            Error::Ceremony("the transcript does not end with a newline (truncated?)".into())
        })?;
        let lines: Vec<String> = body.split('\n').map(str::to_string).collect();
        if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
            return Err(Error::Ceremony(format!(
                "transcript line {} is empty",
                i + 1
            )));
        }
        Ok(Transcript { lines })
    }

    /// The exact lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The chain head: SHA-256 of the last line, or [`GENESIS`].
    pub fn head(&self) -> String {
        self.lines
            .last()
            .map(|l| line_hash(l))
            .unwrap_or_else(|| GENESIS.to_string())
    }

    /// The parsed entries (one-line error naming the bad line).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str::<Entry>(l).map_err(|e| {
                    Error::Ceremony(format!(
                        "transcript line {} is not a transcript entry: {e}",
                        i + 1
                    ))
                })
            })
            .collect()
    }

    fn push(&mut self, step: &str, details: serde_json::Value, time: String) -> Result<Entry> {
        if !details.is_object() {
            return Err(Error::Other("transcript details must be an object".into()));
        }
        let e = Entry {
            seq: self.lines.len() as u64,
            time,
            step: step.to_string(),
            details,
            prev: self.head(),
        };
        let line = serde_json::to_string(&e)
            .map_err(|err| Error::Other(format!("cannot encode a transcript entry: {err}")))?;
        self.lines.push(line);
        Ok(e)
    }

    /// Appends an entry stamped now.
    pub fn append(&mut self, step: &str, details: serde_json::Value) -> Result<Entry> {
        if step == SEAL_STEP {
            return Err(Error::Other("use Transcript::seal for seal entries".into()));
        }
        self.push(step, details, now_rfc3339())
    }

    /// Closes the transcript with a seal signed by `sign` (message → DER ECDSA signature).
    pub fn seal(
        &mut self,
        key_label: &str,
        curve: Curve,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<Entry> {
        let seq = self.lines.len() as u64;
        let time = now_rfc3339();
        let prev = self.head();
        let algorithm = seal_algorithm(curve);
        let sig = sign(&seal_message(seq, &time, &prev, key_label, algorithm))?;
        let details = serde_json::to_value(SealDetails {
            key: key_label.to_string(),
            algorithm: algorithm.to_string(),
            signature: hex::encode(sig),
        })
        .map_err(|e| Error::Other(format!("cannot encode the seal: {e}")))?;
        self.push(SEAL_STEP, details, time)
    }

    /// The file contents (each line followed by `\n`).
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum());
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// The public key seals are checked against.
#[derive(Debug, Clone)]
pub struct SealKey {
    /// Curve of the root key.
    pub curve: Curve,
    /// Uncompressed SEC1 point.
    pub point: Vec<u8>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Number of entries.
    pub entries: usize,
    /// Number of seals (all verified).
    pub seals: usize,
    /// SHA-256 of the last line.
    pub head: String,
    /// Label of the key that signed the seals.
    pub key_label: String,
    /// Time of the first entry.
    pub first_time: String,
    /// Time of the last entry.
    pub last_time: String,
    /// Step names in order.
    pub steps: Vec<String>,
}

/// Verifies the hash chain, every seal's signature (by `key`) and that the last entry is a seal.
/// Errors are one line naming the entry.
pub fn verify(t: &Transcript, key: &SealKey) -> Result<VerifyReport> {
    let entries = t.entries()?;
    if entries.is_empty() {
        return Err(Error::Ceremony("the transcript is empty".into()));
    }
    let mut prev = GENESIS.to_string();
    let mut seals = 0;
    let mut key_label = String::new();
    let mut last_seal = None;
    for (i, (e, line)) in entries.iter().zip(t.lines()).enumerate() {
        let n = i + 1;
        if e.seq != i as u64 {
            return Err(Error::Ceremony(format!(
                "transcript line {n}: seq is {} where {i} was expected (an entry was removed, inserted or reordered)",
                e.seq
            )));
        }
        if e.prev != prev {
            return Err(Error::Ceremony(format!(
                "transcript line {n} ({}): prev does not match the hash of line {i} (an entry was changed, removed or reordered)",
                e.step
            )));
        }
        if OffsetDateTime::parse(&e.time, &Rfc3339).is_err() {
            return Err(Error::Ceremony(format!(
                "transcript line {n}: time '{}' is not RFC 3339",
                e.time
            )));
        }
        if e.step == SEAL_STEP {
            let sd: SealDetails = serde_json::from_value(e.details.clone()).map_err(|err| {
                Error::Ceremony(format!("transcript line {n}: malformed seal: {err}"))
            })?;
            if sd.algorithm != seal_algorithm(key.curve) {
                return Err(Error::Ceremony(format!(
                    "transcript line {n}: seal algorithm {} does not fit the root key ({})",
                    sd.algorithm,
                    key.curve.name()
                )));
            }
            let sig = hex::decode(&sd.signature).map_err(|_| {
                Error::Ceremony(format!("transcript line {n}: seal signature is not hex"))
            })?;
            let msg = seal_message(e.seq, &e.time, &e.prev, &sd.key, &sd.algorithm);
            ec::verify(key.curve, &key.point, &msg, &sig).map_err(|_| {
                Error::Ceremony(format!(
                    "transcript line {n}: the seal signature does not verify with the root key (entries before it were changed, or the seal is forged)"
                ))
            })?;
            seals += 1;
            key_label = sd.key;
            last_seal = Some(i);
        }
        prev = line_hash(line);
    }
    match last_seal {
        None => {
            return Err(Error::Ceremony(
                "the transcript has no seal: it was never closed by the root key".into(),
            ))
        }
        Some(i) if i + 1 != entries.len() => {
            return Err(Error::Ceremony(format!(
                "transcript lines {}..{} come after the last seal (line {}): appended or unsealed entries",
                i + 2,
                entries.len(),
                i + 1
            )))
        }
        Some(_) => {}
    }
    Ok(VerifyReport {
        entries: entries.len(),
        seals,
        head: prev,
        key_label,
        first_time: entries[0].time.clone(),
        last_time: entries[entries.len() - 1].time.clone(),
        steps: entries.iter().map(|e| e.step.clone()).collect(),
    })
}

/// The certificate PEM recorded by the first `root-certificate` entry (details.certificate_pem).
pub fn recorded_root_pem(t: &Transcript) -> Result<Option<String>> {
    Ok(t.entries()?
        .into_iter()
        .find(|e| e.step == "root-certificate")
        .and_then(|e| {
            e.details
                .get("certificate_pem")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }))
}

/// The SHA-256 fingerprint recorded by the first `root-certificate` entry (details.sha256).
pub fn recorded_root_fingerprint(t: &Transcript) -> Result<Option<String>> {
    Ok(t.entries()?
        .into_iter()
        .find(|e| e.step == "root-certificate")
        .and_then(|e| {
            e.details
                .get("sha256")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    fn key() -> (p256::ecdsa::SigningKey, SealKey) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = sk.verifying_key().to_sec1_bytes().to_vec();
        (
            sk,
            SealKey {
                curve: Curve::P256,
                point,
            },
        )
    }

    fn sealed() -> (Transcript, SealKey) {
        let (sk, k) = key();
        let mut t = Transcript::new();
        t.append("a", serde_json::json!({"x": 1})).unwrap();
        t.append("b", serde_json::json!({"y": 2})).unwrap();
        t.seal("root", Curve::P256, |m| {
            let s: p256::ecdsa::Signature =
                sk.sign_prehash(Curve::P256.digest(m).as_ref()).unwrap();
            ec::raw_to_der(Curve::P256, &s.to_bytes())
        })
        .unwrap();
        (t, k)
    }

    #[test]
    fn expect_head_must_be_a_sha256_in_hex() {
        let h = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        assert_eq!(parse_head(h).unwrap(), h.to_ascii_lowercase());
        for bad in [
            "",
            "xyz",
            &h[..63],
            &format!("{h}00"),
            &h.replace('9', "g"),
            "9f86\n",
        ] {
            let e = parse_head(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected 64 hex digits") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn roundtrip_and_tamper() {
        let (t, k) = sealed();
        let text = t.to_text();
        let r = verify(&Transcript::parse(&text).unwrap(), &k).unwrap();
        assert_eq!((r.entries, r.seals), (3, 1));
        // change
        let bad = text.replace("\"x\":1", "\"x\":2");
        assert!(verify(&Transcript::parse(&bad).unwrap(), &k).is_err());
        // remove
        let lines: Vec<&str> = text.lines().collect();
        let removed = format!("{}\n{}\n", lines[0], lines[2]);
        assert!(verify(&Transcript::parse(&removed).unwrap(), &k).is_err());
        // reorder
        let reordered = format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]);
        assert!(verify(&Transcript::parse(&reordered).unwrap(), &k).is_err());
        // append
        let mut t2 = t.clone();
        t2.append("c", serde_json::json!({})).unwrap();
        let e = verify(&t2, &k).unwrap_err().to_string();
        assert!(e.contains("after the last seal"), "{e}");
    }
}
