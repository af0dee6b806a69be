//! `list-slots`: every slot with its index and slot id, the token in it, and optionally the key
//! objects on the selected token.

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};

use crate::error::Result;
use crate::hsm::ec::Curve;
use crate::hsm::lookup::class_name;
use crate::hsm::module::{Module, ModuleInfo};
use crate::hsm::retry::retry_idempotent;
use crate::hsm::select::TokenSummary;
use crate::hsm::uri::{ObjectType, Pkcs11Uri};

/// One object on a token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectSummary {
    /// `private-key`, `public-key`, `certificate`, `secret-key`.
    pub class: String,
    /// CKA_LABEL.
    pub label: String,
    /// CKA_ID, hex.
    pub id: String,
    /// `EC`, `RSA`, … for keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// `P-256` / `P-384` for EC keys on a supported curve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
    /// An RFC 7512 URI that selects this object.
    pub uri: String,
}

/// One slot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotReport {
    /// Position in the slot list.
    pub index: usize,
    /// PKCS#11 slot id (not stable under SoftHSM).
    pub slot_id: u64,
    /// Slot description.
    pub description: String,
    /// The token, if one is present.
    pub token: Option<TokenSummary>,
    /// Objects on the token (`--objects`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<ObjectSummary>>,
    /// Why objects are partial or missing (e.g. not logged in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_note: Option<String>,
}

/// The whole `list-slots` result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotsReport {
    /// The module.
    pub module: ModuleInfo,
    /// All slots.
    pub slots: Vec<SlotReport>,
}

/// Lists every slot and token (no login).
pub fn list_slots(module: &Module) -> Result<SlotsReport> {
    let ctx = module.ctx();
    let mut slots = Vec::new();
    let tokens = crate::hsm::select::tokens(module)?;
    for (index, slot) in ctx.get_all_slots()?.into_iter().enumerate() {
        let info = ctx.get_slot_info(slot)?;
        let token = tokens
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, t)| t.clone());
        slots.push(SlotReport {
            index,
            slot_id: slot.id(),
            description: info.slot_description().trim_end().to_string(),
            token,
            objects: None,
            objects_note: None,
        });
    }
    Ok(SlotsReport {
        module: module.info()?,
        slots,
    })
}

fn class_id(class: ObjectClass) -> &'static str {
    if class == ObjectClass::PRIVATE_KEY {
        "private-key"
    } else if class == ObjectClass::PUBLIC_KEY {
        "public-key"
    } else if class == ObjectClass::CERTIFICATE {
        "certificate"
    } else if class == ObjectClass::SECRET_KEY {
        "secret-key"
    } else {
        class_name(class)
    }
}

fn uri_type(class: ObjectClass) -> Option<ObjectType> {
    if class == ObjectClass::PRIVATE_KEY {
        Some(ObjectType::Private)
    } else if class == ObjectClass::PUBLIC_KEY {
        Some(ObjectType::Public)
    } else if class == ObjectClass::CERTIFICATE {
        Some(ObjectType::Cert)
    } else if class == ObjectClass::SECRET_KEY {
        Some(ObjectType::SecretKey)
    } else {
        None
    }
}

/// The key and certificate objects visible in `session` (private ones only when logged in).
pub fn list_objects(
    session: &cryptoki::session::Session,
    token_label: &str,
) -> Result<Vec<ObjectSummary>> {
    let mut out = Vec::new();
    for class in [
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
        ObjectClass::SECRET_KEY,
        ObjectClass::CERTIFICATE,
    ] {
        let t = [Attribute::Class(class)];
        let handles: Vec<ObjectHandle> = retry_idempotent(|| session.find_objects(&t))?;
        for h in handles {
            let want: &[AttributeType] = if class == ObjectClass::CERTIFICATE {
                &[AttributeType::Label, AttributeType::Id]
            } else {
                &[
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                ]
            };
            let attrs = retry_idempotent(|| session.get_attributes(h, want))?;
            let mut o = ObjectSummary {
                class: class_id(class).to_string(),
                label: String::new(),
                id: String::new(),
                key_type: None,
                curve: None,
                uri: String::new(),
            };
            let mut id_bytes = Vec::new();
            for a in attrs {
                match a {
                    Attribute::Label(v) => o.label = String::from_utf8_lossy(&v).into_owned(),
                    Attribute::Id(v) => {
                        o.id = hex::encode(&v);
                        id_bytes = v;
                    }
                    Attribute::KeyType(k) => {
                        o.key_type = Some(if k == KeyType::EC {
                            "EC".to_string()
                        } else {
                            k.to_string()
                        })
                    }
                    Attribute::EcParams(p) => {
                        o.curve = Some(
                            Curve::from_ec_params(&p)
                                .map(|c| c.name().to_string())
                                .unwrap_or_else(|_| format!("params {}", hex::encode(&p))),
                        )
                    }
                    _ => {}
                }
            }
            o.uri = Pkcs11Uri {
                token: Some(token_label.to_string()),
                object: Some(o.label.clone()),
                id: Some(id_bytes),
                object_type: uri_type(class),
                ..Default::default()
            }
            .to_string();
            out.push(o);
        }
    }
    Ok(out)
}
