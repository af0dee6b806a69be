//! The DER of the root's CRL (RFC 5280 §5), written by hand because rcgen's CRL API always puts
//! a distribution point URI into the issuingDistributionPoint extension, and the root's CRL
//! carries an IDP that only says onlyContainsCACerts: with a URI, OpenSSL (and RFC 5280 §6.3.3)
//! would not apply the CRL to an intermediate whose certificate names no such distribution point.
//!
//! [`tbs_cert_list`] builds the TBSCertList (version 2, the root's issuer name copied byte for
//! byte, thisUpdate, nextUpdate, the revoked certificates with their reason codes, and the
//! extensions AKI, cRLNumber and a critical IDP with onlyContainsCACerts); the HSM signs those
//! bytes and [`certificate_list`] wraps them with the signature.

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::hsm::Curve;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` constructed (crlExtensions, EXPLICIT).
const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
/// `[0]` primitive (AuthorityKeyIdentifier.keyIdentifier, IMPLICIT OCTET STRING).
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
/// `[2]` primitive (IssuingDistributionPoint.onlyContainsCACerts, IMPLICIT BOOLEAN).
const CONTEXT_2_PRIMITIVE: u8 = 0x82;

/// OID 1.2.840.10045.4.3.2, ecdsa-with-SHA256 (tag and length included).
const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
/// OID 1.2.840.10045.4.3.3, ecdsa-with-SHA384.
const OID_ECDSA_SHA384: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
/// OID 2.5.29.35, authorityKeyIdentifier.
const OID_AKI: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x23];
/// OID 2.5.29.20, cRLNumber.
const OID_CRL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x14];
/// OID 2.5.29.28, issuingDistributionPoint.
const OID_IDP: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x1c];
/// OID 2.5.29.21, reasonCode (a CRL entry extension).
const OID_REASON_CODE: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x15];
/// BOOLEAN TRUE (an extension's `critical`).
const TRUE: &[u8] = &[0x01, 0x01, 0xff];

/// One revoked certificate of the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial: the content octets of its DER INTEGER, as in the certificate.
    pub serial: Vec<u8>,
    /// When the root revoked it.
    pub revocation_time: OffsetDateTime,
    /// RFC 5280 CRLReason code; `0` (unspecified) is written as no reasonCode extension (§5.3.1).
    pub reason_code: u8,
}

/// What the TBSCertList says.
#[derive(Debug, Clone)]
pub struct CrlContent<'a> {
    /// The root's curve (the signature algorithm).
    pub curve: Curve,
    /// The root certificate's subject Name, DER, exactly as in the certificate.
    pub issuer: &'a [u8],
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The revoked certificates (none: the list is absent, as RFC 5280 §5.1.2.6 asks).
    pub revoked: &'a [RevokedEntry],
    /// The root's subject key identifier (for the AKI).
    pub authority_key_id: &'a [u8],
    /// cRLNumber.
    pub number: u64,
}

/// A DER element: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(content.len() + 6);
    v.push(tag);
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend_from_slice(&bytes);
    }
    v.extend_from_slice(content);
    v
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from big-endian bytes (minimal, with a leading zero when the top bit
/// is set).
fn unsigned_integer(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&trimmed);
    tlv(INTEGER, &content)
}

/// Time (RFC 5280 §5.1.2.4): UTCTime through 2049, GeneralizedTime from 2050.
fn time(t: OffsetDateTime) -> Result<Vec<u8>> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (y, mo, d, h, mi, s) = (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    match y {
        1950..=2049 => Ok(tlv(
            UTC_TIME,
            format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes(),
        )),
        2050..=9999 => Ok(tlv(
            GENERALIZED_TIME,
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
        )),
        _ => Err(Error::input(format!(
            "the time {t} cannot be encoded in a CRL"
        ))),
    }
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit: &[u8] = if critical { TRUE } else { &[] };
    seq(&[oid, crit, &tlv(OCTET_STRING, value)])
}

fn algorithm(curve: Curve) -> Vec<u8> {
    seq(&[match curve {
        Curve::P256 => OID_ECDSA_SHA256,
        Curve::P384 => OID_ECDSA_SHA384,
    }])
}

fn revoked_entry(e: &RevokedEntry) -> Result<Vec<u8>> {
    let serial = tlv(INTEGER, &e.serial);
    let date = time(e.revocation_time)?;
    if e.reason_code == 0 {
        return Ok(seq(&[&serial, &date]));
    }
    let reason = extension(OID_REASON_CODE, false, &tlv(ENUMERATED, &[e.reason_code]));
    Ok(seq(&[&serial, &date, &seq(&[&reason])]))
}

/// The TBSCertList: the bytes the root key signs.
pub fn tbs_cert_list(c: &CrlContent<'_>) -> Result<Vec<u8>> {
    let version = tlv(INTEGER, &[1]);
    let mut entries = Vec::new();
    for e in c.revoked {
        entries.extend(revoked_entry(e)?);
    }
    let revoked = if c.revoked.is_empty() {
        Vec::new()
    } else {
        tlv(SEQUENCE, &entries)
    };
    let aki = extension(
        OID_AKI,
        false,
        &seq(&[&tlv(CONTEXT_0_PRIMITIVE, c.authority_key_id)]),
    );
    let number = extension(
        OID_CRL_NUMBER,
        false,
        &unsigned_integer(&c.number.to_be_bytes()),
    );
    let idp = extension(OID_IDP, true, &seq(&[&[CONTEXT_2_PRIMITIVE, 0x01, 0xff]]));
    let extensions = tlv(CONTEXT_0_CONSTRUCTED, &seq(&[&aki, &number, &idp]));
    Ok(seq(&[
        &version,
        &algorithm(c.curve),
        c.issuer,
        &time(c.this_update)?,
        &time(c.next_update)?,
        &revoked,
        &extensions,
    ]))
}

/// The CertificateList: the TBSCertList, the algorithm again and the DER ECDSA signature.
pub fn certificate_list(curve: Curve, tbs: &[u8], signature_der: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(signature_der.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(signature_der);
    seq(&[tbs, &algorithm(curve), &tlv(BIT_STRING, &bits)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use time::macros::datetime;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;

    #[test]
    fn lengths_integers_and_times_are_der() {
        assert_eq!(tlv(OCTET_STRING, &[7; 3]), vec![4, 3, 7, 7, 7]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 200])[..3], &[4, 0x81, 200]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 300])[..4], &[4, 0x82, 1, 44]);
        assert_eq!(unsigned_integer(&1u64.to_be_bytes()), vec![2, 1, 1]);
        assert_eq!(unsigned_integer(&0u64.to_be_bytes()), vec![2, 1, 0]);
        assert_eq!(unsigned_integer(&128u64.to_be_bytes()), vec![2, 2, 0, 128]);
        assert_eq!(unsigned_integer(&256u64.to_be_bytes()), vec![2, 2, 1, 0]);
        assert_eq!(
            time(datetime!(2049-12-31 23:59:59 UTC)).unwrap(),
            tlv(UTC_TIME, b"491231235959Z")
        );
        assert_eq!(
            time(datetime!(2050-01-01 00:00:00 UTC)).unwrap(),
            tlv(GENERALIZED_TIME, b"20500101000000Z")
        );
    }

    /// A CRL signed in software parses with x509-parser, verifies, and says what was asked.
    #[test]
    fn a_signed_crl_parses_verifies_and_carries_the_extensions() {
        let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
        let point = key.verifying_key().to_sec1_bytes().to_vec();
        let spki = crate::hsm::ec::spki_der(Curve::P256, &point).unwrap();
        // Name: SEQUENCE { SET { SEQUENCE { OID 2.5.4.3 (CN), UTF8String "R" } } }
        let issuer = seq(&[&tlv(
            0x31,
            &seq(&[&[0x06, 0x03, 0x55, 0x04, 0x03], &tlv(0x0c, b"R")]),
        )]);
        let revoked = [
            RevokedEntry {
                serial: vec![0x01, 0x02],
                revocation_time: datetime!(2026-01-02 03:04:05 UTC),
                reason_code: 1,
            },
            RevokedEntry {
                serial: vec![0x00, 0x80],
                revocation_time: datetime!(2026-01-02 03:04:05 UTC),
                reason_code: 0,
            },
        ];
        let content = CrlContent {
            curve: Curve::P256,
            issuer: &issuer,
            this_update: datetime!(2026-01-02 03:04:05 UTC),
            next_update: datetime!(2027-01-02 03:04:05 UTC),
            revoked: &revoked,
            authority_key_id: &[9; 20],
            number: 300,
        };
        let tbs = tbs_cert_list(&content).unwrap();
        let sig: p256::ecdsa::Signature =
            key.sign_prehash(Curve::P256.digest(&tbs).as_ref()).unwrap();
        let sig = crate::hsm::ec::raw_to_der(Curve::P256, &sig.to_bytes()).unwrap();
        let der = certificate_list(Curve::P256, &tbs, &sig);
        let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert!(rest.is_empty());
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
        crl.verify_signature(&spki).unwrap();
        assert_eq!(crl.crl_number().unwrap().to_string(), "300");
        assert_eq!(crl.issuer().to_string(), "CN=R");
        let serials: Vec<_> = crl
            .iter_revoked_certificates()
            .map(|r| (r.raw_serial().to_vec(), r.reason_code().map(|c| c.1 .0)))
            .collect();
        assert_eq!(
            serials,
            vec![(vec![0x01, 0x02], Some(1)), (vec![0x00, 0x80], None)]
        );
        let idp = crl
            .extensions()
            .iter()
            .find(|e| {
                matches!(
                    e.parsed_extension(),
                    ParsedExtension::IssuingDistributionPoint(_)
                )
            })
            .unwrap();
        assert!(idp.critical);
        match idp.parsed_extension() {
            ParsedExtension::IssuingDistributionPoint(p) => {
                assert!(p.only_contains_ca_certs && p.distribution_point.is_none())
            }
            _ => unreachable!(),
        }
        let aki = crl
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
                _ => None,
            })
            .unwrap();
        assert_eq!(aki.0, &[9; 20]);
    }

    #[test]
    fn an_empty_crl_has_no_revoked_list() {
        let content = CrlContent {
            curve: Curve::P384,
            issuer: &seq(&[]),
            this_update: datetime!(2026-01-02 03:04:05 UTC),
            next_update: datetime!(2026-02-02 03:04:05 UTC),
            revoked: &[],
            authority_key_id: &[1; 20],
            number: 1,
        };
        let tbs = tbs_cert_list(&content).unwrap();
        let der = certificate_list(Curve::P384, &tbs, &[0x30, 0x00]);
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0);
        assert_eq!(crl.crl_number().unwrap().to_string(), "1");
    }
}
