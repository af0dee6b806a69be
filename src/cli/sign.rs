//! `hsm-demo sign --label L (--data STR | --in FILE | stdin) [--format hex|base64|raw] [--batch FILE]`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::cli::common::{
    print_bytes, print_json, read_file, read_stdin, KeyArgs, MessageArgs, MAX_BATCH_BYTES,
};
use crate::cli::Global;
use crate::error::{Error, Result};
use crate::fsutil::{check_output, out_file, write_atomic};
use crate::hsm::digest_key::DigestKey;
use crate::hsm::session::HsmSession;
use crate::hsm::sign::{
    batch_lines, digest_stream, encode_signature, sign_batch, sign_digest_der, SigFormat,
};

const AFTER_HELP: &str = "\
Examples:
  hsm-demo sign --label service-key --data 'hello cert world'
  echo -n 'hello cert world' | hsm-demo sign --label service-key
  hsm-demo sign --label service-key --in msg.txt --format raw --out sig.der
  openssl dgst -sha256 -verify pub.pem -signature sig.der msg.txt
  hsm-demo sign --uri 'pkcs11:token=demo;object=service-key' --data hi --format base64
  hsm-demo sign --label service-key --batch messages.txt > signatures.txt

The message is hashed in software as a stream (SHA-256 for P-256, SHA-384 for P-384; memory stays
flat for any input size) and the digest is signed in the HSM with CKM_ECDSA; the signature is the DER ECDSA-Sig-Value. --batch signs one message per line
with one login and prints one signature per line.";

/// `sign` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Which key.
    #[command(flatten)]
    pub key: KeyArgs,

    /// The message.
    #[command(flatten)]
    pub message: MessageArgs,

    /// Output encoding of the DER signature
    #[arg(long, value_enum, default_value_t = SigFormat::Hex)]
    pub format: SigFormat,

    /// Sign every line of FILE ('-' = stdin) as one message; prints one signature per line
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "input", "out"])]
    pub batch: Option<PathBuf>,

    /// Write the signature (DER bytes for --format raw, else the text) to FILE ('-' = stdout); FILE must not exist
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `sign`.
pub fn run(args: Args, g: &Global) -> Result<()> {
    let (spec, opts) = args.key.resolve(g)?;
    if let Some(batch) = &args.batch {
        if args.format == SigFormat::Raw {
            return Err(Error::input(
                "--format raw cannot be used with --batch: use hex or base64",
            ));
        }
        let data = if batch.as_os_str() == "-" {
            read_stdin("batch input", MAX_BATCH_BYTES)?
        } else {
            read_file("batch file", batch, MAX_BATCH_BYTES)?
        };
        let lines = batch_lines(&data)?;
        let session = HsmSession::connect(&opts)?;
        let signer = DigestKey::find(&session, &spec)?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let n = sign_batch(&signer, &lines, args.format, &mut out)?;
        tracing::debug!(signatures = n, "batch signed");
        return Ok(());
    }
    // Opened now (a missing file fails before the HSM is touched), hashed as a stream once the
    // key's curve is known: a 1 GB input never sits in memory.
    let (msg, what) = args.message.open()?;
    let out = out_file(args.out.as_ref());
    if args.format == SigFormat::Raw && out.is_none() && std::io::stdout().is_terminal() {
        return Err(Error::input(
            "--format raw writes binary: redirect stdout or use --out FILE",
        ));
    }
    if let Some(out) = out {
        check_output(out, false)?;
    }
    let session = HsmSession::connect(&opts)?;
    let signer = DigestKey::find(&session, &spec)?;
    let (digest, len) = digest_stream(signer.curve(), msg, &what)?;
    if len == 0 {
        return Err(Error::input(
            "the message is empty: nothing to sign or verify",
        ));
    }
    let der = sign_digest_der(&signer, &digest)?;
    let mut enc = Vec::with_capacity(der.len() * 2);
    encode_signature(args.format, &der, &mut enc);
    if let Some(out) = out {
        if args.format != SigFormat::Raw {
            enc.push(b'\n');
        }
        return write_atomic(out, &enc, false);
    }
    if g.json {
        return print_json(&serde_json::json!({
            "label": signer.label(),
            "id": hex::encode(signer.id()),
            "algorithm": signer.curve().algorithm_name(),
            "format": args.format,
            "signature": match args.format {
                SigFormat::Raw => hex::encode(&der),
                _ => String::from_utf8_lossy(&enc).into_owned(),
            },
            "signature_der_hex": hex::encode(&der),
        }));
    }
    match args.format {
        SigFormat::Raw => print_bytes(&enc),
        _ => {
            let mut line = Vec::with_capacity(enc.len() + 12);
            line.extend_from_slice(b"Signature: ");
            line.extend_from_slice(&enc);
            line.push(b'\n');
            let mut o = std::io::stdout().lock();
            o.write_all(&line)
                .and_then(|_| o.flush())
                .map_err(|e| Error::io("cannot write to stdout", e))
        }
    }
}
