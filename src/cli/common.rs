//! Argument pieces shared by the commands: key selection, message input, hex parsing, output.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::hsm::lookup::KeySpec;
use crate::hsm::session::ConnectOptions;
use crate::hsm::uri::Pkcs11Uri;

/// Parses hex (upper or lower case, optional `0x`): odd length and bad digits are errors naming `what`.
pub fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() {
        return Err(Error::input(format!("{what} is empty")));
    }
    if !t.len().is_multiple_of(2) {
        return Err(Error::input(format!(
            "{what} has an odd number of hex digits ({}): hex needs two digits per byte",
            t.len()
        )));
    }
    if let Some((i, c)) = t.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(Error::input(format!(
            "{what} is not valid hex: '{}' at position {}",
            c.escape_default(),
            i + 1
        )));
    }
    hex::decode(t).map_err(|e| Error::input(format!("{what} is not valid hex: {e}")))
}

/// Which key: `--label`, `--id`, or `--uri`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Key label (CKA_LABEL)
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,

    /// Key id (CKA_ID) in hex; with --label both must match
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,

    /// RFC 7512 PKCS#11 URI, e.g. 'pkcs11:token=demo;object=service-key;id=%01%02'
    #[arg(long, value_name = "PKCS11-URI", conflicts_with_all = ["label", "id"])]
    pub uri: Option<String>,
}

impl KeyArgs {
    /// The key spec and connect options (a URI's token=/serial=/module-path= override the globals
    /// only where those are unset; a contradiction is an error).
    pub fn resolve(&self, g: &Global) -> Result<(KeySpec, ConnectOptions)> {
        let mut opts = g.connect_options();
        if let Some(u) = &self.uri {
            let uri = Pkcs11Uri::parse(u)?;
            let spec = KeySpec::from_uri(&uri)?;
            if let Some(t) = uri.token.as_ref().or(uri.serial.as_ref()) {
                match &opts.token {
                    Some(g) if g != t => {
                        return Err(Error::input(format!(
                            "the URI selects token '{t}' but --token/HSM_DEMO_TOKEN selects '{g}'"
                        )))
                    }
                    _ => opts.token = Some(t.clone()),
                }
            }
            if let Some(p) = &uri.module_path {
                if opts.module.is_none() {
                    opts.module = Some(PathBuf::from(p));
                }
            }
            return Ok((spec, opts));
        }
        let id = self
            .id
            .as_deref()
            .map(|h| parse_hex("--id", h))
            .transpose()?;
        if self.label.as_deref() == Some("") {
            return Err(Error::input("--label must not be empty"));
        }
        if self.label.is_none() && id.is_none() {
            return Err(Error::input("no key selected: give --label, --id or --uri"));
        }
        Ok((
            KeySpec {
                label: self.label.clone(),
                id,
            },
            opts,
        ))
    }
}

/// The message: `--data`, `--in FILE`, or stdin.
#[derive(Debug, Clone, clap::Args)]
pub struct MessageArgs {
    /// The message as a string (UTF-8 bytes as given)
    #[arg(long, value_name = "STRING", conflicts_with = "input")]
    pub data: Option<String>,

    /// Read the message from FILE ('-' = stdin); without --data or --in, stdin is read
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// Largest message `verify` reads into memory (`sign` hashes its input as a stream instead).
pub const MAX_MESSAGE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest `sign --batch` file (its lines are held in memory while they are signed).
pub const MAX_BATCH_BYTES: u64 = 256 * 1024 * 1024;
/// Largest signature file (a DER ECDSA-Sig-Value for P-384 is at most 104 bytes).
pub const MAX_SIG_FILE_BYTES: u64 = 1024;
/// Largest PEM public key file.
pub const MAX_PUBKEY_FILE_BYTES: u64 = 64 * 1024;

fn stdin_not_terminal(what: &str) -> Result<std::io::Stdin> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::input(format!(
            "no {what}: give --data, --in FILE, or pipe it on stdin"
        )));
    }
    Ok(stdin)
}

/// Reads stdin (at most `limit` bytes); refuses an interactive terminal (nothing would tell the
/// user to type).
pub fn read_stdin(what: &str, limit: u64) -> Result<Vec<u8>> {
    let stdin = stdin_not_terminal(what)?;
    crate::fsutil::read_bounded(stdin.lock(), &format!("{what} on stdin"), limit)
}

/// Reads a whole file of at most `limit` bytes, with its path in the error.
pub fn read_file(what: &str, path: &std::path::Path, limit: u64) -> Result<Vec<u8>> {
    crate::fsutil::read_file_bounded(path, what, limit)
}

impl MessageArgs {
    /// The message bytes (at most [`MAX_MESSAGE_BYTES`]); an empty message is an error.
    pub fn read(&self) -> Result<Vec<u8>> {
        let m = match (&self.data, &self.input) {
            (Some(d), _) => d.as_bytes().to_vec(),
            (None, Some(p)) if p.as_os_str() == "-" => read_stdin("message", MAX_MESSAGE_BYTES)?,
            (None, Some(p)) => read_file("input file", p, MAX_MESSAGE_BYTES)?,
            (None, None) => read_stdin("message", MAX_MESSAGE_BYTES)?,
        };
        if m.is_empty() {
            return Err(Error::input(
                "the message is empty: nothing to sign or verify",
            ));
        }
        Ok(m)
    }

    /// The message as a stream to hash (`sign`: memory stays flat for any size), opened now so a
    /// missing file fails before the HSM is touched; also names the source for errors.
    pub fn open(&self) -> Result<(Box<dyn Read>, String)> {
        Ok(match (&self.data, &self.input) {
            (Some(d), _) => (
                Box::new(std::io::Cursor::new(d.clone().into_bytes())),
                "--data".into(),
            ),
            (None, Some(p)) if p.as_os_str() != "-" => {
                let f = std::fs::File::open(p)
                    .map_err(|e| Error::io(format!("cannot read input file {}", p.display()), e))?;
                if f.metadata().is_ok_and(|m| m.is_dir()) {
                    return Err(Error::input(format!(
                        "input file {} is a directory",
                        p.display()
                    )));
                }
                (Box::new(f), format!("input file {}", p.display()))
            }
            _ => (Box::new(stdin_not_terminal("message")?), "stdin".into()),
        })
    }
}

/// Writes `bytes` to stdout (locked, flushed), mapping errors.
pub fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))
}

/// Prints a JSON value on one line.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string(v).map_err(|e| Error::Other(format!("JSON: {e}")))?;
    s.push('\n');
    print_bytes(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors() {
        assert_eq!(parse_hex("x", "0A0b").unwrap(), vec![10, 11]);
        assert_eq!(parse_hex("x", "0x01").unwrap(), vec![1]);
        assert!(parse_hex("--sig", "abc")
            .unwrap_err()
            .to_string()
            .contains("odd number"));
        let e = parse_hex("--sig", "zz").unwrap_err().to_string();
        assert!(e.contains("not valid hex: 'z' at position 1"), "{e}");
        assert!(parse_hex("--sig", "")
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }
}
