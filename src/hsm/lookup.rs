//! Key look-up: which key ([`KeySpec`]), object class names, and the searches and attribute reads
//! of an [`HsmSession`] (all idempotent, retried on a transient code).

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};

use crate::error::{Error, Result};
use crate::hsm::ec::{self, Curve};
use crate::hsm::retry::retry_idempotent;
use crate::hsm::session::HsmSession;
use crate::hsm::uri::{ObjectType, Pkcs11Uri};

/// Which key to look up: by label, by id, or both (never neither).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// CKA_LABEL.
    pub label: Option<String>,
    /// CKA_ID.
    pub id: Option<Vec<u8>>,
}

impl KeySpec {
    /// By label.
    pub fn label(l: impl Into<String>) -> Self {
        KeySpec {
            label: Some(l.into()),
            id: None,
        }
    }

    /// From a PKCS#11 URI's `object=` and `id=` (the `token=` part selects the token).
    pub fn from_uri(u: &Pkcs11Uri) -> Result<Self> {
        if u.object.is_none() && u.id.is_none() {
            return Err(Error::Uri(
                "the URI names no key: give object= and/or id=".into(),
            ));
        }
        Ok(KeySpec {
            label: u.object.clone(),
            id: u.id.clone(),
        })
    }

    /// Human description, e.g. `private key with label 'k' and id 0102`.
    pub fn describe(&self, class: ObjectClass) -> String {
        let kind = class_name(class);
        match (&self.label, &self.id) {
            (Some(l), Some(i)) => format!("{kind} with label '{l}' and id {}", hex::encode(i)),
            (Some(l), None) => format!("{kind} with label '{l}'"),
            (None, Some(i)) => format!("{kind} with id {}", hex::encode(i)),
            (None, None) => format!("{kind} (no label or id given)"),
        }
    }

    pub(crate) fn template(&self, class: ObjectClass) -> Result<Vec<Attribute>> {
        if self.label.is_none() && self.id.is_none() {
            return Err(Error::input("no key selected: give --label, --id or --uri"));
        }
        let mut t = vec![Attribute::Class(class)];
        if let Some(l) = &self.label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(i) = &self.id {
            t.push(Attribute::Id(i.clone()));
        }
        Ok(t)
    }
}

/// `private key` / `public key` / `certificate` …
pub fn class_name(class: ObjectClass) -> &'static str {
    if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if class == ObjectClass::PUBLIC_KEY {
        "public key"
    } else if class == ObjectClass::CERTIFICATE {
        "certificate"
    } else if class == ObjectClass::SECRET_KEY {
        "secret key"
    } else if class == ObjectClass::DATA {
        "data object"
    } else {
        "object"
    }
}

/// The object class for a URI `type=`.
pub fn class_for_type(t: ObjectType) -> ObjectClass {
    match t {
        ObjectType::Private => ObjectClass::PRIVATE_KEY,
        ObjectType::Public => ObjectClass::PUBLIC_KEY,
        ObjectType::Cert => ObjectClass::CERTIFICATE,
        ObjectType::SecretKey => ObjectClass::SECRET_KEY,
        ObjectType::Data => ObjectClass::DATA,
    }
}

/// Reads the curve and SEC1 point of a public-key object.
pub fn read_public_key(session: &HsmSession, public: ObjectHandle) -> Result<(Curve, Vec<u8>)> {
    let params = session
        .get_bytes(public, AttributeType::EcParams)?
        .ok_or_else(|| {
            Error::Unsupported("the public key has no CKA_EC_PARAMS: not an EC key".into())
        })?;
    let curve = Curve::from_ec_params(&params)?;
    let raw = session
        .get_bytes(public, AttributeType::EcPoint)?
        .ok_or_else(|| Error::Other("the public key has no CKA_EC_POINT".into()))?;
    Ok((curve, ec::decode_ec_point(curve, &raw)?))
}

/// Finds exactly one public key for `spec` and returns its curve and SEC1 point.
pub fn find_public_key(session: &HsmSession, spec: &KeySpec) -> Result<(Curve, Vec<u8>)> {
    let h = session.find_key(ObjectClass::PUBLIC_KEY, spec)?;
    read_public_key(session, h)
}

impl HsmSession {
    /// All objects of `class` matching `spec` (label and/or id; never an empty template).
    pub fn find_keys(&self, class: ObjectClass, spec: &KeySpec) -> Result<Vec<ObjectHandle>> {
        let t = spec.template(class)?;
        retry_idempotent(|| self.session().find_objects(&t))
    }

    /// Exactly one object of `class` matching `spec`: none or several is an error that says so.
    pub fn find_key(&self, class: ObjectClass, spec: &KeySpec) -> Result<ObjectHandle> {
        let found = self.find_keys(class, spec)?;
        match found.len() {
            1 => Ok(found[0]),
            0 => {
                let mut what = spec.describe(class);
                if !self.is_logged_in() && class != ObjectClass::PUBLIC_KEY {
                    what.push_str(" (not logged in: private objects are hidden)");
                }
                Err(Error::KeyNotFound {
                    what,
                    token: self.token_label().to_string(),
                })
            }
            count => Err(Error::KeyAmbiguous {
                what: spec.describe(class),
                count,
                token: self.token_label().to_string(),
            }),
        }
    }

    /// The private and public keys labelled `label`, in ONE C_FindObjects pass (the template is
    /// the label alone; the class of each match is read afterwards). A file-backed token such as
    /// SoftHSM2 pays per object on the token for every search, so callers that need both halves
    /// of a pair use this instead of two [`Self::find_keys`] calls.
    pub fn find_labelled_keys(
        &self,
        label: &str,
    ) -> Result<(Vec<ObjectHandle>, Vec<ObjectHandle>)> {
        let t = [Attribute::Label(label.as_bytes().to_vec())];
        let found = retry_idempotent(|| self.session().find_objects(&t))?;
        let (mut privs, mut pubs) = (Vec::new(), Vec::new());
        for h in found {
            let attrs =
                retry_idempotent(|| self.session().get_attributes(h, &[AttributeType::Class]))?;
            match attrs.first() {
                Some(Attribute::Class(c)) if *c == ObjectClass::PRIVATE_KEY => privs.push(h),
                Some(Attribute::Class(c)) if *c == ObjectClass::PUBLIC_KEY => pubs.push(h),
                _ => {} // a certificate or data object with the same label: not a key
            }
        }
        Ok((privs, pubs))
    }

    /// All objects of `class` on the token (listing; never an empty template).
    pub fn find_all_of_class(&self, class: ObjectClass) -> Result<Vec<ObjectHandle>> {
        let t = [Attribute::Class(class)];
        retry_idempotent(|| self.session().find_objects(&t))
    }

    /// One byte-valued attribute (label, id, EC params, EC point …); `None` if the object lacks it.
    pub fn get_bytes(&self, obj: ObjectHandle, ty: AttributeType) -> Result<Option<Vec<u8>>> {
        let attrs = retry_idempotent(|| self.session().get_attributes(obj, &[ty]))?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Label(v)
            | Attribute::Id(v)
            | Attribute::EcParams(v)
            | Attribute::EcPoint(v)
            | Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    /// CKA_LABEL as a string (lossy), CKA_ID bytes.
    pub fn label_and_id(&self, obj: ObjectHandle) -> Result<(String, Vec<u8>)> {
        let attrs = retry_idempotent(|| {
            self.session
                .get_attributes(obj, &[AttributeType::Label, AttributeType::Id])
        })?;
        let mut label = String::new();
        let mut id = Vec::new();
        for a in attrs {
            match a {
                Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                Attribute::Id(v) => id = v,
                _ => {}
            }
        }
        Ok((label, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spec_never_builds_an_empty_template() {
        let e = KeySpec::default()
            .template(ObjectClass::PRIVATE_KEY)
            .unwrap_err();
        assert!(e.to_string().contains("no key selected"));
        let t = KeySpec::label("x")
            .template(ObjectClass::PUBLIC_KEY)
            .unwrap();
        assert_eq!(t.len(), 2);
    }
}
