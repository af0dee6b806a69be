//! `sign`: hash in Rust, CKM_ECDSA in the HSM, DER ECDSA-Sig-Value out; and the batch signer
//! (one session and login for the whole file, one signature per line, no per-line allocation
//! beyond what the PKCS#11 call itself needs).

use std::io::{Read, Write};

use base64::Engine;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::hsm::digest_key::DigestKey;
use crate::hsm::ec::{self, Curve};

/// Hashes everything `r` yields with `curve`'s hash (SHA-256 / SHA-384) in 64 KiB chunks:
/// memory stays flat whatever the input's size. Returns the digest and the number of bytes.
/// `what` names the source in errors.
pub fn digest_stream(curve: Curve, mut r: impl Read, what: &str) -> Result<(Vec<u8>, u64)> {
    fn run<H: Digest>(mut h: H, r: &mut dyn Read, what: &str) -> Result<(Vec<u8>, u64)> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut len = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("cannot read {what}"), e)),
            };
            h.update(&buf[..n]);
            len += n as u64;
        }
        Ok((h.finalize().to_vec(), len))
    }
    match curve {
        Curve::P256 => run(sha2::Sha256::new(), &mut r, what),
        Curve::P384 => run(sha2::Sha384::new(), &mut r, what),
    }
}

/// Signs a digest computed by [`digest_stream`] in the HSM (CKM_ECDSA): DER ECDSA-Sig-Value.
pub fn sign_digest_der(signer: &DigestKey<'_>, digest: &[u8]) -> Result<Vec<u8>> {
    let raw = signer.sign_digest_raw(digest)?;
    ec::raw_to_der(signer.curve(), &raw)
}

/// How a signature is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigFormat {
    /// Lower-case hex of the DER ECDSA-Sig-Value.
    Hex,
    /// Standard base64 of the DER ECDSA-Sig-Value.
    Base64,
    /// The DER bytes themselves.
    Raw,
}

/// Encodes `der` in `format` into `buf` (cleared first; reused across calls).
pub fn encode_signature(format: SigFormat, der: &[u8], buf: &mut Vec<u8>) {
    buf.clear();
    match format {
        SigFormat::Hex => {
            buf.resize(der.len() * 2, 0);
            // Cannot fail: the buffer has exactly the needed length.
            let _ = hex::encode_to_slice(der, buf);
        }
        SigFormat::Base64 => {
            let n = base64::encoded_len(der.len(), true).unwrap_or(0);
            buf.resize(n, 0);
            let w = base64::engine::general_purpose::STANDARD
                .encode_slice(der, buf)
                .unwrap_or(0);
            buf.truncate(w);
        }
        SigFormat::Raw => buf.extend_from_slice(der),
    }
}

/// Splits a batch file into messages: one per line, `\n` or `\r\n`; the last line may lack its
/// newline. An empty line is an error (1-based line number), checked before anything is signed.
pub fn batch_lines(data: &[u8]) -> Result<Vec<&[u8]>> {
    if data.is_empty() {
        return Err(Error::input("the batch file is empty: nothing to sign"));
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut lines = Vec::with_capacity(body.len() / 16 + 1);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(Error::input(format!(
                "line {} of the batch file is empty: every line must be a message",
                i + 1
            )));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Signs every message with `signer` and writes one encoded signature per line to `out`.
/// `format` must be hex or base64. Returns the number of signatures.
pub fn sign_batch<W: Write>(
    signer: &DigestKey<'_>,
    messages: &[&[u8]],
    format: SigFormat,
    out: &mut W,
) -> Result<usize> {
    if format == SigFormat::Raw {
        return Err(Error::input(
            "--format raw cannot be used with --batch (one signature per line needs text): use hex or base64",
        ));
    }
    let mut buf = Vec::with_capacity(256);
    let write_err = |e| Error::io("cannot write the signatures", e);
    for msg in messages {
        signer.sign_with_der(msg, |der| encode_signature(format, der, &mut buf))?;
        buf.push(b'\n');
        out.write_all(&buf).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(messages.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_split_and_validate() {
        assert_eq!(
            batch_lines(b"a\nbb\r\nc").unwrap(),
            vec![&b"a"[..], b"bb", b"c"]
        );
        assert_eq!(batch_lines(b"a\n").unwrap(), vec![&b"a"[..]]);
        let e = batch_lines(b"a\n\nb\n").unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(batch_lines(b"").is_err());
    }

    #[test]
    fn streamed_digest_equals_the_one_shot_digest() {
        // A reader that yields odd-sized pieces, as a pipe does.
        struct Pieces<'a>(&'a [u8]);
        impl Read for Pieces<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(b.len()).min(7_777);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let msg: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        for c in [Curve::P256, Curve::P384] {
            let (d, len) = digest_stream(c, Pieces(&msg), "test").unwrap();
            assert_eq!(len, msg.len() as u64);
            assert_eq!(d, c.digest(&msg).as_ref());
        }
    }

    #[test]
    fn encodings() {
        let mut b = Vec::new();
        encode_signature(SigFormat::Hex, &[0x30, 0xab], &mut b);
        assert_eq!(b, b"30ab");
        encode_signature(SigFormat::Base64, &[0x30, 0xab, 0x01], &mut b);
        assert_eq!(b, b"MKsB");
        encode_signature(SigFormat::Raw, &[1, 2], &mut b);
        assert_eq!(b, [1, 2]);
    }
}
