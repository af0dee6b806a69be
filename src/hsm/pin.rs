//! Where the user PIN comes from: `HSM_DEMO_PIN`, `--pin-file`, or a no-echo prompt on a terminal.
//!
//! The PIN is passed to `C_Login` exactly as given (AWS CloudHSM uses `user:password`). It lives in
//! a [`SecretString`] (zeroised on drop, redacted in `Debug`) and is never put in argv, logs, JSON
//! output or panic messages.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Environment variable holding the user PIN.
pub const PIN_ENV: &str = "HSM_DEMO_PIN";

/// Where to get the PIN from, in order: the file, the environment, a terminal prompt.
#[derive(Debug, Clone, Default)]
pub struct PinSource {
    /// `--pin-file <path>`: the first line of the file is the PIN.
    pub pin_file: Option<PathBuf>,
    /// Whether a no-echo prompt on the terminal is allowed when nothing else is set.
    pub allow_prompt: bool,
}

impl PinSource {
    /// A source reading `--pin-file` if given, else `HSM_DEMO_PIN`, else prompting on a terminal.
    pub fn new(pin_file: Option<PathBuf>) -> Self {
        PinSource {
            pin_file,
            allow_prompt: true,
        }
    }

    /// Whether a PIN is available without prompting (file or environment).
    pub fn available_without_prompt(&self) -> bool {
        self.pin_file.is_some() || std::env::var_os(PIN_ENV).is_some()
    }

    /// Obtains the PIN. `token` is only used in the prompt and in error messages.
    pub fn get(&self, token: &str) -> Result<SecretString> {
        if let Some(path) = &self.pin_file {
            return read_pin_file(path);
        }
        if let Some(v) = std::env::var_os(PIN_ENV) {
            let mut s = v
                .into_string()
                .map_err(|_| Error::Pin(format!("{PIN_ENV} is not valid UTF-8")))?;
            if s.is_empty() {
                return Err(Error::Pin(format!("{PIN_ENV} is set but empty")));
            }
            let pin = SecretString::from(s.clone());
            s.zeroize();
            return Ok(pin);
        }
        if self.allow_prompt && (std::io::stdin().is_terminal() || std::io::stderr().is_terminal())
        {
            let mut s = rpassword::prompt_password(format!("User PIN for token '{token}': "))
                .map_err(|e| Error::Pin(format!("cannot read the PIN from the terminal: {e}")))?;
            if s.is_empty() {
                return Err(Error::Pin("empty PIN entered".into()));
            }
            let pin = SecretString::from(s.clone());
            s.zeroize();
            return Ok(pin);
        }
        Err(Error::Pin(format!(
            "no PIN for token '{token}': set {PIN_ENV}, pass --pin-file FILE, or run on a terminal to be prompted"
        )))
    }
}

/// Reads a PIN file: the content up to the first line break; the file must not be empty.
pub fn read_pin_file(path: &Path) -> Result<SecretString> {
    let mut bytes = std::fs::read(path)
        .map_err(|e| Error::io(format!("cannot read PIN file {}", path.display()), e))?;
    let end = bytes
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(bytes.len());
    let result = match std::str::from_utf8(&bytes[..end]) {
        Ok("") => Err(Error::Pin(format!("PIN file {} is empty", path.display()))),
        Ok(s) => Ok(SecretString::from(s.to_owned())),
        Err(_) => Err(Error::Pin(format!(
            "PIN file {} is not valid UTF-8",
            path.display()
        ))),
    };
    bytes.zeroize();
    result
}

/// Length of a PIN, for diagnostics that must not reveal it.
pub fn pin_len(pin: &SecretString) -> usize {
    pin.expose_secret().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_file_first_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "user:pass word\r\nignored\n").unwrap();
        let pin = read_pin_file(&p).unwrap();
        assert_eq!(pin.expose_secret(), "user:pass word");
        assert!(!format!("{pin:?}").contains("pass"));
    }

    #[test]
    fn empty_pin_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "\n").unwrap();
        let e = read_pin_file(&p).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }
}
