//! Identifiers checked before any AWS call: device ids, CA ARNs, certificate serials.

use std::fmt;

use crate::error::{Error, Result};

/// Maximum length of a device id.
pub const DEVICE_ID_MAX: usize = 64;

/// A device id: 1–64 characters of `[A-Za-z0-9._-]`, not starting with `.` or `-`.
///
/// The set keeps ids safe as DynamoDB key parts (`DEVICE#<id>`), HSM key labels (`device-<id>`) and
/// file names (`<id>.cert.pem`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl DeviceId {
    /// Checks `s` against the documented character set.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() || s.len() > DEVICE_ID_MAX {
            return Err(Error::input(format!(
                "invalid device id '{}': must be 1-{DEVICE_ID_MAX} characters of [A-Za-z0-9._-]",
                printable(s)
            )));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(Error::input(format!(
                "invalid device id '{}': character {c:?} is outside [A-Za-z0-9._-]",
                printable(s)
            )));
        }
        if s.starts_with(['.', '-']) {
            return Err(Error::input(format!(
                "invalid device id '{s}': must not start with '.' or '-'"
            )));
        }
        Ok(DeviceId(s.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The HSM key label `provision` uses for this device: `device-<id>`.
    pub fn key_label(&self) -> String {
        format!("device-{}", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ACM PCA certificate-authority ARN:
/// `arn:<partition>:acm-pca:<region>:<12-digit account>:certificate-authority/<uuid>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaArn {
    arn: String,
    region: String,
}

impl CaArn {
    /// Parses and checks the ARN's shape (no AWS call).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::input(format!(
                "malformed CA ARN '{}': {why} (expected arn:aws:acm-pca:<region>:<account>:certificate-authority/<uuid>)",
                printable(s)
            ))
        };
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(bad("not an ARN"));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !partition.starts_with("aws") {
            return Err(bad("unknown partition"));
        }
        if service != "acm-pca" {
            return Err(bad("not an acm-pca ARN"));
        }
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad("bad region"));
        }
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("account must be 12 digits"));
        }
        let Some(id) = resource.strip_prefix("certificate-authority/") else {
            return Err(bad("not a certificate-authority resource"));
        };
        if !is_uuid(id) {
            return Err(bad("the CA id is not a UUID"));
        }
        Ok(CaArn {
            arn: s.to_string(),
            region: region.to_string(),
        })
    }

    /// The full ARN.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The region in the ARN.
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl fmt::Display for CaArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A certificate serial number, normalised to lower-case hex of its minimal big-endian bytes
/// (no colons, no leading zero bytes; `0` for zero).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    /// Parses user input: hex with or without colons, any case, optional `0x`.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.is_empty() || hex.len() > 80 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::input(format!(
                "invalid serial '{}': expected hex (e.g. 3f:a2:… or 3fa2…)",
                printable(s)
            )));
        }
        let padded = if hex.len() % 2 == 1 {
            format!("0{hex}")
        } else {
            hex
        };
        let bytes = hex::decode(padded.to_ascii_lowercase())
            .map_err(|_| Error::input(format!("invalid serial '{}'", printable(s))))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// From the DER INTEGER content bytes of a certificate's serial.
    pub fn from_bytes(b: &[u8]) -> Self {
        let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        let s = hex::encode(&b[first..]);
        Serial(if s.is_empty() { "0".into() } else { s })
    }

    /// Normalised lower-case hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Upper-case colon-separated hex (`4C:1F:…`), the form `openssl x509 -serial`-style tools and
    /// RevokeCertificate examples use.
    pub fn colon_hex(&self) -> String {
        let s = if self.0.len() % 2 == 1 {
            format!("0{}", self.0)
        } else {
            self.0.clone()
        };
        s.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap_or("").to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Input echoed in an error, with control characters escaped and length capped.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        for ok in ["a", "dev-001", "A.b_c-9", &"x".repeat(64)] {
            assert!(DeviceId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "é",
            "-a",
            ".a",
            "a#b",
            &"x".repeat(65),
            "a\nb",
        ] {
            let e = DeviceId::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid device id"), "{e}");
            assert!(!e.contains('\n'));
        }
        assert_eq!(DeviceId::parse("d1").unwrap().key_label(), "device-d1");
    }

    #[test]
    fn ca_arns() {
        let ok = "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/12345678-1234-1234-1234-123456789012";
        let a = CaArn::parse(ok).unwrap();
        assert_eq!(a.region(), "eu-west-1");
        for bad in [
            "",
            "arn:aws:acm:eu-west-1:123456789012:certificate-authority/12345678-1234-1234-1234-123456789012",
            "arn:aws:acm-pca:eu-west-1:12345:certificate-authority/12345678-1234-1234-1234-123456789012",
            "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/not-a-uuid",
            "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/12345678-1234-1234-1234-123456789012/certificate/ab",
            "hello",
        ] {
            let e = CaArn::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("malformed CA ARN"), "{e}");
        }
    }

    #[test]
    fn serials() {
        let s = Serial::parse("00:4C:1f:0A").unwrap();
        assert_eq!(s.as_str(), "4c1f0a");
        assert_eq!(s.colon_hex(), "4C:1F:0A");
        assert_eq!(Serial::from_bytes(&[0, 0x80, 1]).as_str(), "8001");
        assert_eq!(Serial::parse("abc").unwrap().as_str(), "0abc");
        assert_eq!(
            Serial::parse("0x0abc").unwrap(),
            Serial::parse("ab:c").unwrap()
        );
        assert!(Serial::parse("xyz").is_err());
        assert!(Serial::parse("").is_err());
    }
}
