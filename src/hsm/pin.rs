//! Where the user PIN comes from: `HSM_DEMO_PIN`, `--pin-file`, or a no-echo prompt on a terminal.
//!
//! The PIN is passed to `C_Login` exactly as given (AWS CloudHSM uses `user:password`). It lives in
//! a [`SecretString`] (zeroised on drop, redacted in `Debug`) and is never put in argv, logs, JSON
//! output or panic messages.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use secrecy::SecretString;
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
        self.available_given(std::env::var_os(PIN_ENV).is_some())
    }

    /// [`Self::available_without_prompt`] with the environment variable's presence given.
    fn available_given(&self, env_set: bool) -> bool {
        self.pin_file.is_some() || env_set
    }

    /// Whether `get` may prompt: allowed, and a terminal to prompt on.
    fn may_prompt(&self, stdin_tty: bool, stderr_tty: bool) -> bool {
        self.allow_prompt && (stdin_tty || stderr_tty)
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
        if self.may_prompt(
            std::io::stdin().is_terminal(),
            std::io::stderr().is_terminal(),
        ) {
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

/// Largest PIN file accepted, in bytes (a PIN is at most a few dozen characters; the bound keeps
/// `/dev/zero` or a FIFO from exhausting memory).
pub const MAX_PIN_FILE_BYTES: u64 = 1024;

/// Reads a PIN file: the content up to the first line break; the file must not be empty and at
/// most [`MAX_PIN_FILE_BYTES`]. A leading UTF-8 byte order mark (Windows editors write one) is
/// not part of the PIN. A world-readable file gets a one-line warning on stderr.
pub fn read_pin_file(path: &Path) -> Result<SecretString> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("cannot read PIN file {}", path.display()), e))?;
    let mut bytes = Vec::with_capacity(64);
    let read = (&file).take(MAX_PIN_FILE_BYTES + 1).read_to_end(&mut bytes);
    if let Err(e) = read {
        bytes.zeroize();
        return Err(Error::io(
            format!("cannot read PIN file {}", path.display()),
            e,
        ));
    }
    if bytes.len() as u64 > MAX_PIN_FILE_BYTES {
        bytes.zeroize();
        return Err(Error::Pin(format!(
            "PIN file {} is larger than {MAX_PIN_FILE_BYTES} bytes: it must hold the PIN on its first line",
            path.display()
        )));
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let end = body
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(body.len());
    let result = match std::str::from_utf8(&body[..end]) {
        Ok("") => Err(Error::Pin(format!("PIN file {} is empty", path.display()))),
        Ok(s) => Ok(SecretString::from(s.to_owned())),
        Err(_) => Err(Error::Pin(format!(
            "PIN file {} is not valid UTF-8",
            path.display()
        ))),
    };
    bytes.zeroize();
    if result.is_ok() {
        warn_if_readable_by_others(path, &file);
    }
    result
}

/// Warns (one line on stderr, once per process) when a regular PIN file is readable or writable
/// by every user.
fn warn_if_readable_by_others(path: &Path, file: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = file.metadata() {
            static WARNED: std::sync::Once = std::sync::Once::new();
            if m.is_file() && m.permissions().mode() & 0o006 != 0 {
                WARNED.call_once(|| {
                    eprintln!(
                        "warning: PIN file {} is readable by every user (mode {:o}): chmod 600 it",
                        path.display(),
                        m.permissions().mode() & 0o777
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_pin_file_of_exactly_the_limit_is_read_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        let mut body = b"123456\n".to_vec();
        body.resize(MAX_PIN_FILE_BYTES as usize, b'#');
        std::fs::write(&p, &body).unwrap();
        assert_eq!(read_pin_file(&p).unwrap().expose_secret(), "123456");
        body.push(b'#');
        std::fs::write(&p, &body).unwrap();
        let e = read_pin_file(&p).unwrap_err().to_string();
        assert!(e.contains("larger than 1024 bytes"), "{e}");
    }

    #[test]
    fn availability_and_prompting_follow_their_sources() {
        let file = PinSource::new(Some(PathBuf::from("pin")));
        let none = PinSource {
            pin_file: None,
            allow_prompt: false,
        };
        assert!(file.available_given(false) && file.available_given(true));
        assert!(none.available_given(true) && !none.available_given(false));
        // Prompting needs permission and a terminal on stdin or stderr.
        let prompting = PinSource::new(None);
        assert!(prompting.may_prompt(true, false) && prompting.may_prompt(false, true));
        assert!(!prompting.may_prompt(false, false));
        assert!(!none.may_prompt(true, true));
    }

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
    fn bom_is_stripped_and_size_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "\u{feff}1234\r\n").unwrap();
        assert_eq!(read_pin_file(&p).unwrap().expose_secret(), "1234");
        std::fs::write(&p, vec![b'1'; 1025]).unwrap();
        let e = read_pin_file(&p).unwrap_err().to_string();
        assert!(e.contains("larger than 1024 bytes"), "{e}");
        let e = read_pin_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 1024 bytes"), "{e}");
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
