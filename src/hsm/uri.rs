//! RFC 7512 PKCS#11 URIs: `pkcs11:token=demo;object=service-key;id=%01%02;type=private`.
//!
//! Path attributes are separated by `;`, query attributes (after `?`) by `&`; values are
//! percent-decoded. Unknown, repeated or malformed attributes are errors. `slot-id` (slot numbers
//! change under SoftHSM) and PINs in the URI (`pin-value`, `pin-source`) are refused.

use std::fmt;

use crate::error::{Error, Result};

/// The `type=` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectType {
    /// `type=private`
    Private,
    /// `type=public`
    Public,
    /// `type=cert`
    Cert,
    /// `type=secret-key`
    SecretKey,
    /// `type=data`
    Data,
}

impl ObjectType {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "private" => ObjectType::Private,
            "public" => ObjectType::Public,
            "cert" => ObjectType::Cert,
            "secret-key" => ObjectType::SecretKey,
            "data" => ObjectType::Data,
            other => {
                return Err(Error::Uri(format!(
                    "type={other} is not one of private, public, cert, secret-key, data"
                )))
            }
        })
    }

    /// The URI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Cert => "cert",
            ObjectType::SecretKey => "secret-key",
            ObjectType::Data => "data",
        }
    }
}

/// A parsed PKCS#11 URI. Every attribute is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pkcs11Uri {
    /// `token=` (token label).
    pub token: Option<String>,
    /// `manufacturer=` (token manufacturer).
    pub manufacturer: Option<String>,
    /// `model=` (token model).
    pub model: Option<String>,
    /// `serial=` (token serial number).
    pub serial: Option<String>,
    /// `object=` (CKA_LABEL).
    pub object: Option<String>,
    /// `id=` (CKA_ID bytes).
    pub id: Option<Vec<u8>>,
    /// `type=`.
    pub object_type: Option<ObjectType>,
    /// `library-manufacturer=`.
    pub library_manufacturer: Option<String>,
    /// `library-description=`.
    pub library_description: Option<String>,
    /// `library-version=`.
    pub library_version: Option<String>,
    /// `slot-description=`.
    pub slot_description: Option<String>,
    /// `slot-manufacturer=`.
    pub slot_manufacturer: Option<String>,
    /// Query `module-name=`.
    pub module_name: Option<String>,
    /// Query `module-path=`.
    pub module_path: Option<String>,
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` into bytes; a `%` not followed by two hex digits is an error.
pub fn percent_decode(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (h, l) = match (b.get(i + 1), b.get(i + 2)) {
                (Some(&h), Some(&l)) => (hexval(h), hexval(l)),
                _ => (None, None),
            };
            match (h, l) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => {
                    return Err(Error::Uri(format!(
                        "bad percent-escape at byte {i} of '{s}' (need %XX with two hex digits)"
                    )))
                }
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_str(name: &str, v: &str) -> Result<String> {
    String::from_utf8(percent_decode(v)?)
        .map_err(|_| Error::Uri(format!("{name}= is not valid UTF-8 after percent-decoding")))
}

fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::Uri(format!("attribute {name} appears twice")));
    }
    *slot = Some(v);
    Ok(())
}

impl Pkcs11Uri {
    /// Whether `s` looks like a PKCS#11 URI (starts with `pkcs11:`, any case).
    pub fn is_uri(s: &str) -> bool {
        s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
    }

    /// Parses an RFC 7512 URI.
    pub fn parse(s: &str) -> Result<Pkcs11Uri> {
        if !Self::is_uri(s) {
            return Err(Error::Uri(format!("'{s}' does not start with pkcs11:")));
        }
        let rest = &s[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut u = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| Error::Uri(format!("path attribute '{attr}' has no '='")))?;
            match name {
                "token" => set(&mut u.token, name, decode_str(name, value)?)?,
                "manufacturer" => set(&mut u.manufacturer, name, decode_str(name, value)?)?,
                "model" => set(&mut u.model, name, decode_str(name, value)?)?,
                "serial" => set(&mut u.serial, name, decode_str(name, value)?)?,
                "object" => set(&mut u.object, name, decode_str(name, value)?)?,
                "id" => set(&mut u.id, name, percent_decode(value)?)?,
                "type" => set(
                    &mut u.object_type,
                    name,
                    ObjectType::parse(&decode_str(name, value)?)?,
                )?,
                "library-manufacturer" => {
                    set(&mut u.library_manufacturer, name, decode_str(name, value)?)?
                }
                "library-description" => {
                    set(&mut u.library_description, name, decode_str(name, value)?)?
                }
                "library-version" => set(&mut u.library_version, name, decode_str(name, value)?)?,
                "slot-description" => {
                    set(&mut u.slot_description, name, decode_str(name, value)?)?
                }
                "slot-manufacturer" => {
                    set(&mut u.slot_manufacturer, name, decode_str(name, value)?)?
                }
                "slot-id" => {
                    return Err(Error::Uri(
                        "slot-id is not supported (slot ids change): select the token with token= or serial="
                            .into(),
                    ))
                }
                other => return Err(Error::Uri(format!("unknown path attribute '{other}'"))),
            }
        }
        if let Some(q) = query {
            for attr in q.split('&').filter(|a| !a.is_empty()) {
                let (name, value) = attr
                    .split_once('=')
                    .ok_or_else(|| Error::Uri(format!("query attribute '{attr}' has no '='")))?;
                match name {
                    "module-name" => set(&mut u.module_name, name, decode_str(name, value)?)?,
                    "module-path" => set(&mut u.module_path, name, decode_str(name, value)?)?,
                    "pin-value" | "pin-source" => {
                        return Err(Error::Uri(format!(
                            "{name} is not accepted: PINs never go on the command line; use HSM_DEMO_PIN or --pin-file"
                        )))
                    }
                    other => return Err(Error::Uri(format!("unknown query attribute '{other}'"))),
                }
            }
        }
        Ok(u)
    }
}

fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path: Vec<String> = Vec::new();
        for (n, v) in [
            ("library-manufacturer", &self.library_manufacturer),
            ("library-description", &self.library_description),
            ("library-version", &self.library_version),
            ("slot-manufacturer", &self.slot_manufacturer),
            ("slot-description", &self.slot_description),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("serial", &self.serial),
            ("token", &self.token),
            ("object", &self.object),
        ] {
            if let Some(v) = v {
                path.push(format!("{n}={}", encode(v.as_bytes())));
            }
        }
        if let Some(id) = &self.id {
            // Ids are binary: every byte as %XX (RFC 7512 style), so they read as hex.
            let hexed: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            path.push(format!("id={hexed}"));
        }
        if let Some(t) = self.object_type {
            path.push(format!("type={}", t.as_str()));
        }
        let mut query: Vec<String> = Vec::new();
        for (n, v) in [
            ("module-name", &self.module_name),
            ("module-path", &self.module_path),
        ] {
            if let Some(v) = v {
                query.push(format!("{n}={}", encode(v.as_bytes())));
            }
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_attributes() {
        let u =
            Pkcs11Uri::parse("pkcs11:token=demo;object=service%20key;id=%01%02%ff;type=private")
                .unwrap();
        assert_eq!(u.token.as_deref(), Some("demo"));
        assert_eq!(u.object.as_deref(), Some("service key"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 2, 0xff][..]));
        assert_eq!(u.object_type, Some(ObjectType::Private));
    }

    #[test]
    fn scheme_is_case_insensitive_and_empty_uri_is_valid() {
        assert_eq!(Pkcs11Uri::parse("PKCS11:").unwrap(), Pkcs11Uri::default());
        assert!(Pkcs11Uri::parse("pkcs11:object=a").is_ok());
    }

    #[test]
    fn query_module_path() {
        let u = Pkcs11Uri::parse("pkcs11:object=k?module-path=/usr/lib/x.so").unwrap();
        assert_eq!(u.module_path.as_deref(), Some("/usr/lib/x.so"));
    }

    #[test]
    fn errors() {
        for (bad, needle) in [
            ("token=demo", "does not start with pkcs11:"),
            ("pkcs11:colour=red", "unknown path attribute 'colour'"),
            ("pkcs11:object", "has no '='"),
            ("pkcs11:id=%0", "bad percent-escape"),
            ("pkcs11:id=%zz", "bad percent-escape"),
            ("pkcs11:object=a;object=b", "appears twice"),
            ("pkcs11:type=key", "type=key is not one of"),
            ("pkcs11:slot-id=1", "slot-id is not supported"),
            (
                "pkcs11:object=a?pin-value=1234",
                "pin-value is not accepted",
            ),
            ("pkcs11:object=a?foo=1", "unknown query attribute"),
            ("pkcs11:object=%ff%fe", "not valid UTF-8"),
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(!e.contains("1234"), "PIN leaked: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        let u = Pkcs11Uri {
            token: Some("my token".into()),
            object: Some("k;1".into()),
            id: Some(vec![0, 0xab, b'L']),
            object_type: Some(ObjectType::Public),
            module_path: Some("/x/y.so".into()),
            ..Default::default()
        };
        let s = u.to_string();
        assert_eq!(
            s,
            "pkcs11:token=my%20token;object=k%3B1;id=%00%AB%4C;type=public?module-path=%2Fx%2Fy.so"
        );
        assert_eq!(Pkcs11Uri::parse(&s).unwrap(), u);
    }
}
