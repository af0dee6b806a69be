//! `sign`: hash in Rust, CKM_ECDSA in the HSM, DER ECDSA-Sig-Value out; and the batch signer
//! (one session and login for the whole file, one signature per line, no per-line allocation
//! beyond what the PKCS#11 call itself needs).

use std::io::Write;

use base64::Engine;

use crate::error::{Error, Result};
use crate::hsm::signer::HsmSigner;

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
    signer: &HsmSigner<'_>,
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
