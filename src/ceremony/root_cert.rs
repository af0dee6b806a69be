//! Step 3 of the key ceremony: the self-signed root certificate, created with rcgen through the
//! HSM signer (CA:TRUE critical with pathLen, keyUsage keyCertSign+cRLSign critical, SKI, random
//! positive 20-byte serial) and checked (self-signature, public key) before anything is written.

use std::io::Write;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
    KeyUsagePurpose, SerialNumber,
};

use super::config::{CeremonyPlan, DnField};
use super::transcript::{self, Transcript};
use super::x509::{cert_info, fingerprint, key_identifier, random_serial, sha256_hex};
use super::{cert_err, now_seconds, rfc3339, say};
use crate::error::{Error, Result};
use crate::hsm::signer::HsmSigner;

fn to_dn(subject: &[(DnField, String)]) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    for (f, v) in subject {
        match f {
            DnField::Country => dn.push(
                DnType::CountryName,
                DnValue::PrintableString(
                    rcgen::string::PrintableString::try_from(v.as_str())
                        .map_err(|e| Error::Config(format!("subject country '{v}': {e}")))?,
                ),
            ),
            DnField::State => dn.push(DnType::StateOrProvinceName, v.as_str()),
            DnField::Locality => dn.push(DnType::LocalityName, v.as_str()),
            DnField::Organization => dn.push(DnType::OrganizationName, v.as_str()),
            DnField::OrganizationalUnit => dn.push(DnType::OrganizationalUnitName, v.as_str()),
            DnField::CommonName => dn.push(DnType::CommonName, v.as_str()),
        }
    }
    Ok(dn)
}

/// The signed and checked root certificate.
pub(super) struct RootCert {
    pub(super) pem: String,
    pub(super) fingerprint: String,
    pub(super) serial: String,
}

/// Step 3: the self-signed root certificate, checked before anything is written.
pub(super) fn root_certificate(
    plan: &CeremonyPlan,
    signer: &HsmSigner<'_>,
    spki: &[u8],
    t: &mut Transcript,
    out: &mut dyn Write,
) -> Result<RootCert> {
    let not_before = now_seconds();
    let not_after = plan.validity.end(not_before)?;
    let serial = random_serial();
    let ski = key_identifier(signer.public_point());
    let mut params = CertificateParams::default();
    params.distinguished_name = to_dn(&plan.subject)?;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(plan.path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    let cert = params
        .self_signed(signer)
        .map_err(|e| cert_err("cannot create the root certificate", e))?;
    kill_point!("ceremony-root-signed");
    let der = cert.der().to_vec();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| cert_err("the new root certificate does not parse", e))?;
    parsed
        .verify_signature(None)
        .map_err(|e| cert_err("the root certificate's self-signature does not verify", e))?;
    let info = cert_info(&der)?;
    if info.spki != spki {
        return Err(Error::Certificate(
            "the root certificate carries another public key than the HSM key".into(),
        ));
    }
    let pem_text = cert.pem();
    let fp = fingerprint(&der);
    say(out, format!("  subject:      {}", info.subject))?;
    say(out, format!("  serial:       {}", info.serial))?;
    say(
        out,
        format!(
            "  validity:     {} to {} ({})",
            rfc3339(not_before),
            rfc3339(not_after),
            plan.validity
        ),
    )?;
    say(
        out,
        format!(
            "  extensions:   basicConstraints critical CA:TRUE pathLen {}; keyUsage critical keyCertSign, cRLSign; SKI {}",
            plan.path_len,
            hex::encode(&ski)
        ),
    )?;
    say(out, format!("  SHA-256 fingerprint: {fp}"))?;
    t.append(
        "root-certificate",
        serde_json::json!({
            "subject": info.subject,
            "serial": info.serial,
            "not_before": rfc3339(not_before),
            "not_after": rfc3339(not_after),
            "validity": plan.validity.to_string(),
            "path_len": plan.path_len,
            "key_usage": ["keyCertSign", "cRLSign"],
            "ski": hex::encode(&ski),
            "signature_algorithm": transcript::seal_algorithm(plan.curve),
            "sha256": sha256_hex(&der),
            "certificate_pem": pem_text,
        }),
    )?;
    Ok(RootCert {
        pem: pem_text,
        fingerprint: fp,
        serial: info.serial,
    })
}
