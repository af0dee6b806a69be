//! A device's HSM key pair, bound to the intent it was generated under.
//!
//! **The binding.** Every device key pair hsm-demo generates carries the CKA_ID [`intent_key_id`]:
//! the mark `hsm-demo/intent/` and 32 hex digits of SHA-256 over the device, the generation and
//! the owner of the claim (`<host>:<pid>:<process start>:<nonce>`, one per process). So the id
//! names one claim of one generation: two claims never make keys with the same id, and a runner
//! always knows which key under a label is its own. A runner that gives an intent up removes the
//! key it made for it ([`DeviceKeys::discard`](crate::pca::provision::DeviceKeys::discard)).
//!
//! **The choice** under a label is [`plan`], from what the registry records, never a guess:
//!
//! | found under the label | used | removed |
//! |---|---|---|
//! | the unfinished issuance's CSR (its intent stored the CSR's digest) names a key | that key | every other pair no certificate records |
//! | a key with this claim's own id | it | the keys of the claims this one took over |
//! | exactly one key a recorded certificate of the device carries | it | every other pair no certificate records |
//! | exactly one key not made under an intent (`generate-key`, older versions) | it | the keys of the claims this one took over |
//! | nothing usable | a new pair with this claim's id | the keys of the claims this one took over |
//! | several recorded keys, or several keys made outside an intent | none: an error | nothing |
//!
//! A claim taken over from a dead holder, or from one whose lease ran out before it stored a CSR,
//! made a key that signed nothing that was sent (an IssueCertificate is only sent after the CSR's
//! digest is stored in the intent, and the takeover is conditional on no CSR being stored), and
//! that holder, if still alive, fails its next conditional write and gives up: so the claim that
//! took over removes that key. Any other intent-bound key is left alone unless a record names
//! the kept key: it may belong to a claim that took *this* one over while this runner was
//! stalled, and removing it would remove the key that claim certifies. Half pairs (a run killed
//! inside C_GenerateKeyPair) are always removed. So a device left with two keys under its label,
//! by a race or by an older version, is repaired by the next run that holds its intent with a
//! record naming the key (an unfinished issuance's stored CSR, a recorded certificate): the key
//! the records name is kept.

use std::sync::RwLock;

use crate::error::{Error, Result};
use crate::hsm::ec::Curve;
use crate::hsm::key_index::KeyIndex;
use crate::hsm::keygen::{generate_key_locked, KeygenRequest};
use crate::hsm::lock::TokenLock;
use crate::hsm::lookup::KeySpec;
use crate::hsm::repair::pair_is_intact;
use crate::hsm::role;
use crate::hsm::session::HsmSession;
use crate::hsm::signer::HsmSigner;
use crate::pca::csr::CsrRequest;
use crate::pca::csr::{build_csr, Csr};
use crate::pca::ids::DeviceId;
use crate::pca::token::sha256_hex;

/// One device to provision.
#[derive(Clone, Debug)]
pub struct DeviceRequest {
    /// Device id.
    pub device: DeviceId,
    /// Subject and SANs (`cn` defaults to the device id).
    pub csr: CsrRequest,
    /// HSM key label (default `device-<id>`).
    pub key_label: String,
    /// Curve for a new key.
    pub curve: Curve,
    /// The device's own CSR, already checked ([`crate::pca::device_csr`]): the key was generated
    /// on the device, the HSM is not used (`csr` then holds the subject the CSR carries).
    pub device_csr: Option<Csr>,
}

impl DeviceRequest {
    /// Defaults: CN = device id, label `device-<id>`, P-256.
    pub fn new(device: DeviceId) -> Self {
        DeviceRequest {
            csr: CsrRequest {
                cn: Some(device.to_string()),
                ..CsrRequest::default()
            },
            key_label: device.key_label(),
            curve: Curve::P256,
            device,
            device_csr: None,
        }
    }
}

/// What happened to the device's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOutcome {
    /// Generated now.
    Created,
    /// Found by label and reused.
    Reused,
    /// A pair left by an interrupted run (half a pair, or the key of a claim this one took over)
    /// was removed and a new pair generated.
    Regenerated,
    /// Not touched (the certificate was already issued or its ARN already stored).
    Untouched,
    /// Generated on the device, which sent a CSR: no HSM key.
    Device,
}

/// The CKA_ID mark of a device key generated under an intent.
pub const INTENT_KEY_ID_PREFIX: &[u8] = b"hsm-demo/intent/";

/// The CKA_ID of the key pair that the claim of `owner` generates for `device`'s `generation`.
pub fn intent_key_id(device: &str, generation: u32, owner: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(device.len() + owner.len() + 16);
    for part in [
        device.as_bytes(),
        &generation.to_be_bytes(),
        owner.as_bytes(),
    ] {
        input.extend_from_slice(&(part.len() as u32).to_be_bytes());
        input.extend_from_slice(part);
    }
    let mut id = INTENT_KEY_ID_PREFIX.to_vec();
    id.extend_from_slice(&sha256_hex(&input).as_bytes()[..32]);
    id
}

/// Whether `id` marks a key generated under an intent.
pub fn is_intent_key_id(id: &[u8]) -> bool {
    id.starts_with(INTENT_KEY_ID_PREFIX)
}

/// What the claim that asks for the key knows about it.
#[derive(Clone, Debug, Default)]
pub struct KeyBinding {
    /// The CKA_ID a key generated by this claim gets ([`intent_key_id`]).
    pub own_id: Vec<u8>,
    /// Whether the key may be generated without searching the token when the runner's key index
    /// does not know the label: no runner can have generated a key under it (see
    /// [`crate::hsm::key_index`]).
    pub unsearched: bool,
    /// The digest of the CSR the unfinished issuance stored (its certificationRequestInfo): only
    /// the key that signs that same request may be used.
    pub stored_csr_sha256: Option<String>,
    /// The public keys (SubjectPublicKeyInfo DER) of the device's recorded certificates.
    pub recorded_spkis: Vec<Vec<u8>>,
    /// The key ids of the claims this one took the intent over from: their keys signed nothing
    /// that was sent (no CSR was stored), and those claims can no longer store one.
    pub replaced_ids: Vec<Vec<u8>>,
}

/// One key pair found under the label, as [`plan`] sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// CKA_ID.
    pub id: Vec<u8>,
    /// Both halves present, one private key, curve and point readable.
    pub intact: bool,
    /// The public key (intact pairs only).
    pub spki: Option<Vec<u8>>,
    /// The stored CSR's digest matches a CSR signed by this pair.
    pub named: bool,
}

/// Which key to sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The candidate at this index.
    Use(usize),
    /// A new pair with the claim's own id.
    Generate,
}

/// [`plan`]'s decision: the key, and the candidates to remove first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The key.
    pub pick: Pick,
    /// Indices of the candidates to destroy.
    pub destroy: Vec<usize>,
}

/// Why [`plan`] cannot choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoChoice {
    /// The unfinished issuance's CSR was signed by a key no longer on the token.
    StoredKeyGone,
    /// Several keys qualify and nothing recorded tells them apart.
    Ambiguous(usize),
}

/// Chooses the key under a label (the table in the module documentation).
pub fn plan(cands: &[Candidate], b: &KeyBinding) -> std::result::Result<Plan, NoChoice> {
    let recorded = |c: &Candidate| {
        c.spki
            .as_ref()
            .is_some_and(|s| b.recorded_spkis.contains(s))
    };
    let intact: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].intact).collect();
    let only = |f: &dyn Fn(&Candidate) -> bool| -> Vec<usize> {
        intact.iter().copied().filter(|&i| f(&cands[i])).collect()
    };
    let (pick, strict) = if b.stored_csr_sha256.is_some() {
        match only(&|c| c.named).first() {
            Some(&i) => (Pick::Use(i), true),
            None => return Err(NoChoice::StoredKeyGone),
        }
    } else if let Some(&i) = only(&|c| c.id == b.own_id).first() {
        (Pick::Use(i), false)
    } else {
        let rec = only(&recorded);
        let free = only(&|c| !is_intent_key_id(&c.id) && !recorded(c));
        match (rec.as_slice(), free.as_slice()) {
            ([i], _) => (Pick::Use(*i), true),
            ([], [i]) => (Pick::Use(*i), false),
            ([], []) => (Pick::Generate, false),
            ([], f) => return Err(NoChoice::Ambiguous(f.len())),
            (r, _) => return Err(NoChoice::Ambiguous(r.len())),
        }
    };
    // `strict`: the kept key is the one the records name, so every unrecorded pair goes.
    // Otherwise only the keys of the claims this one replaced: another intent-bound key may
    // belong to a claim that replaced *this* one while it was stalled, and keys made outside an
    // intent are not ours to judge.
    let destroy = (0..cands.len())
        .filter(|&i| Pick::Use(i) != pick)
        .filter(|&i| {
            let c = &cands[i];
            !c.intact || (!recorded(c) && (strict || b.replaced_ids.contains(&c.id)))
        })
        .collect();
    Ok(Plan { pick, destroy })
}

/// The device's key pair and its CSR: generated, found or repaired as [`plan`] says, under the
/// token lock. `store` is the batch runner's key index (see
/// [`crate::pca::provision::hsm_csr_locked`]).
pub fn key_and_csr(
    session: &HsmSession,
    req: &DeviceRequest,
    b: &KeyBinding,
    store: Option<&RwLock<KeyIndex>>,
) -> Result<(Csr, KeyOutcome)> {
    let label = req.key_label.as_str();
    // Key work holds the index for writing (this process's workers one at a time), signing
    // only for reading (see `hsm_csr_locked`).
    let mut index = store.map(|l| l.write().unwrap_or_else(|p| p.into_inner()));
    let (signer, outcome) = match index
        .as_deref_mut()
        .filter(|i| b.unsearched && !i.may_contain(label))
    {
        Some(i) => {
            // Recorded first: should the generation fail and leave something behind, a retry
            // of this device searches instead of trusting the index.
            i.insert(label);
            let lock = TokenLock::acquire(session)?;
            let key = generate_key_locked(session, &keygen_request(req, b), &lock)?;
            (
                HsmSigner::from_generated(session, &key)?,
                KeyOutcome::Created,
            )
        }
        None => match searched(session, req, b)? {
            Searched::Signed(csr) => {
                if let Some(i) = index.as_deref_mut() {
                    i.insert(label);
                }
                return Ok((csr, KeyOutcome::Reused));
            }
            Searched::Key(signer, outcome) => (signer, outcome),
        },
    };
    if let Some(i) = index.as_deref_mut() {
        i.insert(label);
    }
    drop(index);
    let _shared = store.map(|l| l.read().unwrap_or_else(|p| p.into_inner()));
    Ok((build_csr(&req.csr, &signer)?, outcome))
}

/// What the label search gave: the key, or (resuming a stored CSR) the CSR already signed.
enum Searched<'s> {
    Key(HsmSigner<'s>, KeyOutcome),
    Signed(Csr),
}

/// The search path of [`key_and_csr`]: one label search under the token lock, then [`plan`].
fn searched<'s>(
    session: &'s HsmSession,
    req: &DeviceRequest,
    b: &KeyBinding,
) -> Result<Searched<'s>> {
    let label = req.key_label.as_str();
    let lock = TokenLock::acquire(session)?;
    let found = Found::search(session, label)?;
    let (cands, named_csr) = found.candidates(session, req, b)?;
    tracing::debug!(
        label = %label,
        found = cands.len(),
        ids = %cands.iter().map(|c| hex::encode(&c.id)).collect::<Vec<_>>().join(","),
        replaced = b.replaced_ids.len(),
        "key pairs under the device's label"
    );
    let p = plan(&cands, b).map_err(|e| no_choice(e, session, req, b))?;
    let destroyed = found.destroy(session, label, &p.destroy, &lock)?;
    match (p.pick, named_csr) {
        (Pick::Use(_), Some(csr)) => Ok(Searched::Signed(csr)),
        (Pick::Use(i), None) => Ok(Searched::Key(
            found.signer(session, i, label)?,
            KeyOutcome::Reused,
        )),
        (Pick::Generate, _) => {
            let key = generate_key_locked(session, &keygen_request(req, b), &lock)?;
            let outcome = if destroyed > 0 {
                KeyOutcome::Regenerated
            } else {
                KeyOutcome::Created
            };
            Ok(Searched::Key(
                HsmSigner::from_generated(session, &key)?,
                outcome,
            ))
        }
    }
}

/// Destroys the key pair this claim generated for `req` (label and the claim's own id), if any:
/// the claim is given up, and no other claim ever uses that key. Returns the objects destroyed.
pub fn discard(session: &HsmSession, req: &DeviceRequest, b: &KeyBinding) -> Result<usize> {
    let lock = TokenLock::acquire(session)?;
    let spec = KeySpec {
        label: Some(req.key_label.clone()),
        id: Some(b.own_id.clone()),
    };
    crate::hsm::keygen::destroy_keys(session, &spec, &lock)
}

/// A generation request for this claim's key: its own id, which is new by construction (so no
/// search for it), under a label that may already exist (the caller holds the token lock).
fn keygen_request(req: &DeviceRequest, b: &KeyBinding) -> KeygenRequest {
    KeygenRequest {
        id: Some(b.own_id.clone()),
        id_is_new: true,
        allow_duplicate_label: true,
        ..KeygenRequest::new(req.key_label.clone(), req.curve)
    }
}

fn no_choice(e: NoChoice, session: &HsmSession, req: &DeviceRequest, b: &KeyBinding) -> Error {
    let device = &req.device;
    let label = &req.key_label;
    match e {
        NoChoice::StoredKeyGone => Error::StoredKeyNotFound {
            device: device.to_string(),
            label: label.to_string(),
            token: session.token_label().to_string(),
            csr_sha256: b.stored_csr_sha256.clone().unwrap_or_default(),
        },
        NoChoice::Ambiguous(count) => Error::KeyAmbiguous {
            what: format!(
                "private key with label '{label}' (none recorded for device {device} or all of them)"
            ),
            count,
            token: session.token_label().to_string(),
        },
    }
}

/// The key objects under one label, grouped by CKA_ID.
struct Found {
    groups: Vec<Group>,
}

struct Group {
    id: Vec<u8>,
    privs: Vec<cryptoki::object::ObjectHandle>,
    pubs: Vec<cryptoki::object::ObjectHandle>,
}

impl Found {
    fn search(session: &HsmSession, label: &str) -> Result<Found> {
        let (privs, pubs) = session.find_labelled_keys(label)?;
        let mut groups: Vec<Group> = Vec::new();
        for (h, private) in privs
            .iter()
            .map(|h| (*h, true))
            .chain(pubs.iter().map(|h| (*h, false)))
        {
            let (_, id) = session.label_and_id(h)?;
            let g = match groups.iter_mut().position(|g| g.id == id) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        id,
                        privs: Vec::new(),
                        pubs: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            if private {
                g.privs.push(h);
            } else {
                g.pubs.push(h);
            }
        }
        Ok(Found { groups })
    }

    /// The candidates for [`plan`], and the CSR of the pair the stored digest names (signed
    /// while looking for it).
    fn candidates(
        &self,
        session: &HsmSession,
        req: &DeviceRequest,
        b: &KeyBinding,
    ) -> Result<(Vec<Candidate>, Option<Csr>)> {
        let mut named_csr = None;
        let mut out = Vec::with_capacity(self.groups.len());
        for (i, g) in self.groups.iter().enumerate() {
            let mut c = Candidate {
                id: g.id.clone(),
                ..Candidate::default()
            };
            if g.privs.len() > 1 {
                return Err(Error::KeyAmbiguous {
                    what: format!("private key with label '{}' and one CKA_ID", req.key_label),
                    count: g.privs.len(),
                    token: session.token_label().to_string(),
                });
            }
            if g.privs.len() == 1
                && !g.pubs.is_empty()
                && pair_is_intact(session, &g.privs, &g.pubs)?
            {
                let signer = self.signer(session, i, &req.key_label)?;
                c.intact = true;
                c.spki = Some(signer.spki_der()?);
                if let Some(want) = b.stored_csr_sha256.as_deref() {
                    if named_csr.is_none() {
                        let csr = build_csr(&req.csr, &signer)?;
                        if sha256_hex(&csr.tbs) == want {
                            c.named = true;
                            named_csr = Some(csr);
                        }
                    }
                }
            }
            out.push(c);
        }
        Ok((out, named_csr))
    }

    /// The signer of group `i` (an intact pair): its public key is the one with the same CKA_ID.
    fn signer<'s>(&self, session: &'s HsmSession, i: usize, label: &str) -> Result<HsmSigner<'s>> {
        let g = &self.groups[i];
        HsmSigner::from_pair(
            session,
            g.privs[0],
            g.pubs[0],
            label.to_string(),
            g.id.clone(),
        )
    }

    /// Destroys the groups at `which` (never a key-ceremony key), under the token lock.
    fn destroy(
        &self,
        session: &HsmSession,
        label: &str,
        which: &[usize],
        _lock: &TokenLock,
    ) -> Result<usize> {
        for &i in which {
            role::require_ordinary(label, &self.groups[i].id)?;
        }
        let mut n = 0;
        for &i in which {
            let g = &self.groups[i];
            for &h in g.privs.iter().chain(&g.pubs) {
                session.session().destroy_object(h)?;
                n += 1;
            }
            tracing::warn!(
                label = %label,
                id = %hex::encode(&g.id),
                "removed a key pair under the device's label that no record names"
            );
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &[u8], spki: Option<&[u8]>) -> Candidate {
        Candidate {
            id: id.to_vec(),
            intact: spki.is_some(),
            spki: spki.map(<[u8]>::to_vec),
            named: false,
        }
    }

    fn binding(own: &[u8], recorded: &[&[u8]]) -> KeyBinding {
        KeyBinding {
            own_id: own.to_vec(),
            recorded_spkis: recorded.iter().map(|s| s.to_vec()).collect(),
            ..KeyBinding::default()
        }
    }

    #[test]
    fn intent_key_ids_differ_by_device_generation_and_owner_and_carry_the_mark() {
        let a = intent_key_id("d1", 0, "h:1:2:n");
        assert!(is_intent_key_id(&a));
        assert_eq!(a.len(), INTENT_KEY_ID_PREFIX.len() + 32);
        assert_eq!(a, intent_key_id("d1", 0, "h:1:2:n"));
        for other in [
            intent_key_id("d2", 0, "h:1:2:n"),
            intent_key_id("d1", 1, "h:1:2:n"),
            intent_key_id("d1", 0, "h:1:2:m"),
            // length-prefixed: moving a byte between fields changes the id
            intent_key_id("d1:", 0, "1:2:n"),
        ] {
            assert_ne!(a, other);
        }
        assert!(!is_intent_key_id(b"\x01\x02"));
        assert_eq!(role::role_of(&a), role::KeyRole::Ordinary);
    }

    #[test]
    fn nothing_found_generates() {
        let p = plan(&[], &binding(b"hsm-demo/intent/me", &[])).unwrap();
        assert_eq!(
            p,
            Plan {
                pick: Pick::Generate,
                destroy: vec![]
            }
        );
    }

    fn plan_of(cands: &[Candidate], b: &KeyBinding) -> (Pick, Vec<usize>) {
        let p = plan(cands, b).unwrap();
        (p.pick, p.destroy)
    }

    #[test]
    fn own_key_is_used_and_only_a_replaced_claims_key_goes() {
        let c = [
            cand(b"hsm-demo/intent/other", Some(b"k1")),
            cand(b"hsm-demo/intent/me", Some(b"k2")),
            cand(b"legacy", Some(b"k3")),
            cand(b"hsm-demo/intent/replaced", Some(b"k4")),
        ];
        let mut b = binding(b"hsm-demo/intent/me", &[]);
        b.replaced_ids = vec![b"hsm-demo/intent/replaced".to_vec()];
        assert_eq!(plan_of(&c, &b), (Pick::Use(1), vec![3]));
    }

    #[test]
    fn an_unrecorded_key_of_another_claim_is_never_adopted() {
        let c = [cand(b"hsm-demo/intent/other", Some(b"k1"))];
        let mut b = binding(b"hsm-demo/intent/me", &[]);
        // Not a claim this one replaced (it may have replaced this one): left alone.
        assert_eq!(plan_of(&c, &b), (Pick::Generate, vec![]));
        // The claim this one took over: its key goes.
        b.replaced_ids = vec![b"hsm-demo/intent/other".to_vec()];
        assert_eq!(plan_of(&c, &b), (Pick::Generate, vec![0]));
    }

    #[test]
    fn the_recorded_key_is_kept_and_every_unrecorded_pair_goes() {
        let c = [
            cand(b"legacy-a", Some(b"k1")),
            cand(b"legacy-b", Some(b"k2")),
            cand(b"hsm-demo/intent/other", Some(b"k3")),
        ];
        let p = plan(&c, &binding(b"hsm-demo/intent/me", &[b"k2"])).unwrap();
        assert_eq!(
            p,
            Plan {
                pick: Pick::Use(1),
                destroy: vec![0, 2]
            }
        );
    }

    #[test]
    fn one_key_made_outside_an_intent_is_used_and_kept() {
        let c = [
            cand(b"legacy", Some(b"k1")),
            cand(b"hsm-demo/intent/other", Some(b"k2")),
        ];
        let b = binding(b"hsm-demo/intent/me", &[]);
        assert_eq!(plan_of(&c, &b), (Pick::Use(0), vec![]));
    }

    #[test]
    fn two_keys_nothing_records_are_an_error_not_a_guess() {
        let c = [cand(b"a", Some(b"k1")), cand(b"b", Some(b"k2"))];
        assert_eq!(
            plan(&c, &binding(b"hsm-demo/intent/me", &[])),
            Err(NoChoice::Ambiguous(2))
        );
        assert_eq!(
            plan(&c, &binding(b"hsm-demo/intent/me", &[b"k1", b"k2"])),
            Err(NoChoice::Ambiguous(2))
        );
    }

    #[test]
    fn the_stored_csr_names_the_key_and_nothing_else_will_do() {
        let mut c = [
            cand(b"hsm-demo/intent/other", Some(b"k1")),
            cand(b"hsm-demo/intent/me", Some(b"k2")),
            cand(b"recorded", Some(b"k0")),
        ];
        c[0].named = true;
        let mut b = binding(b"hsm-demo/intent/me", &[b"k0"]);
        b.stored_csr_sha256 = Some("abc".into());
        assert_eq!(
            plan(&c, &b).unwrap(),
            Plan {
                pick: Pick::Use(0),
                destroy: vec![1]
            }
        );
        c[0].named = false;
        assert_eq!(plan(&c, &b), Err(NoChoice::StoredKeyGone));
    }

    #[test]
    fn half_pairs_always_go_and_are_never_used() {
        let c = [cand(b"hsm-demo/intent/me", None), cand(b"legacy", None)];
        let p = plan(&c, &binding(b"hsm-demo/intent/me", &[])).unwrap();
        assert_eq!(
            p,
            Plan {
                pick: Pick::Generate,
                destroy: vec![0, 1]
            }
        );
    }
}
