"""CRLs published to S3 as AWS Private CA does: at activation, on enabling, after each revocation.

Stock moto 5.2.5 writes no CRL at all: every test here fails there at the first GetObject
(NoSuchKey), or on the control endpoint (404) for the delay switch.
"""

import datetime as dt
import itertools
import subprocess
import time

import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from hsm_demo_standin import testing
from hsm_demo_standin.testing import issue_and_get, make_csr

_n = itertools.count(1)


@pytest.fixture(scope="module")
def s3(endpoint):
    return testing.client(endpoint, "s3")


@pytest.fixture
def bucket(s3):
    name = f"crl-test-{next(_n)}-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=name)
    return name


def crl_config(bucket, days=7, **extra):
    return {"CrlConfiguration": {"Enabled": True, "S3BucketName": bucket, "ExpirationInDays": days, **extra}}


def ca_id(arn):
    return arn.rsplit("/", 1)[1]


def fetch_crl(s3, bucket, arn):
    der = s3.get_object(Bucket=bucket, Key=f"crl/{ca_id(arn)}.crl")["Body"].read()
    return der, x509.load_der_x509_crl(der)


def openssl_verify(tmp_path, der, ca_pems):
    (tmp_path / "x.crl").write_bytes(der)
    (tmp_path / "ca.pem").write_text("\n".join(p.strip() for p in ca_pems) + "\n")
    return subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "x.crl"), "-CAfile", str(tmp_path / "ca.pem"),
         "-verify", "-noout"],
        capture_output=True, text=True,
    )


def ca_pem(pca, arn):
    got = pca.get_certificate_authority_certificate(CertificateAuthorityArn=arn)
    return [got["Certificate"]] + ([got["CertificateChain"]] if got.get("CertificateChain") else [])


def ski(pem):
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_activation_publishes_a_signed_crl(pca, s3, bucket, tmp_path):
    """ImportCertificateAuthorityCertificate (→ ACTIVE) writes crl/<ca-id>.crl: v2, issuer = the CA's
    subject, CRL number 1, AKI = the CA's SKI, nextUpdate = thisUpdate + ExpirationInDays, no entries,
    and `openssl crl -verify` accepts it against the CA certificate."""
    root = testing.activate_root(pca, "crl root", revocation=crl_config(bucket, days=3))
    der, crl = fetch_crl(s3, bucket, root)
    pem = ca_pem(pca, root)
    assert crl.issuer == x509.load_pem_x509_certificate(pem[0].encode()).subject
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski(pem[0])
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=3)
    assert abs((crl.last_update_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert len(crl) == 0
    out = openssl_verify(tmp_path, der, pem)
    assert out.returncode == 0 and "verify OK" in out.stderr, out.stderr


@pytest.mark.parametrize("key_alg,sig_alg", [("EC_secp384r1", "SHA384WITHECDSA"), ("RSA_2048", "SHA256WITHRSA_PSS")])
def test_revocations_are_listed_with_reasons_and_increasing_numbers(pca, s3, bucket, tmp_path, key_alg, sig_alg):
    """Each RevokeCertificate republishes the subordinate CA's CRL: the CRL number grows, the revoked
    serials are listed with their reason codes (none for UNSPECIFIED, as RFC 5280 asks), the CRL is
    signed with the CA's SigningAlgorithm, and openssl verifies it against the chain."""
    root = testing.activate_root(pca, "crl parent")
    sub = testing.activate_subordinate(
        pca, root, "crl issuing", 0, 2, key_alg=key_alg, sig_alg=sig_alg, revocation=crl_config(bucket)
    )
    _, first = fetch_crl(s3, bucket, sub)
    serials = []
    for reason in ("KEY_COMPROMISE", "SUPERSEDED", "UNSPECIFIED"):
        cert = issue_and_get(pca, sub, make_csr(f"crl {reason}")[0], sig_alg=sig_alg)["cert"]
        serial = x509.load_pem_x509_certificate(cert.encode()).serial_number
        pca.revoke_certificate(CertificateAuthorityArn=sub, CertificateSerial=format(serial, "x"), RevocationReason=reason)
        serials.append((serial, reason))
    issue_and_get(pca, sub, make_csr("crl not revoked")[0], sig_alg=sig_alg)
    der, crl = fetch_crl(s3, bucket, sub)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 3
    assert len(crl) == 3
    want = {"KEY_COMPROMISE": x509.ReasonFlags.key_compromise, "SUPERSEDED": x509.ReasonFlags.superseded}
    for serial, reason in serials:
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        assert entry is not None
        assert abs((entry.revocation_date_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
        reasons = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
        assert reasons == ([want[reason]] if reason in want else [])
    oid = x509.SignatureAlgorithmOID
    assert crl.signature_algorithm_oid == {"SHA384WITHECDSA": oid.ECDSA_WITH_SHA384, "SHA256WITHRSA_PSS": oid.RSASSA_PSS}[sig_alg]
    out = openssl_verify(tmp_path, der, ca_pem(pca, sub))
    assert out.returncode == 0 and "verify OK" in out.stderr, out.stderr
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "x.crl"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "Key Compromise" in text and "Superseded" in text


def test_enabling_crl_by_update_publishes_and_sets_the_acl(pca, s3, bucket):
    """A CA activated without CRLs has no CRL object; UpdateCertificateAuthority enabling CRLs writes
    one at once, public-read by default; with S3ObjectAcl BUCKET_OWNER_FULL_CONTROL the object is not
    public. A CA whose bucket does not exist publishes nothing and keeps answering."""
    root = testing.activate_root(pca, "crl later")
    key = f"crl/{ca_id(root)}.crl"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key)
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    pca.update_certificate_authority(CertificateAuthorityArn=root, RevocationConfiguration=crl_config(bucket))
    _, crl = fetch_crl(s3, bucket, root)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    all_users = "http://acs.amazonaws.com/groups/global/AllUsers"

    def public(k):
        grants = s3.get_object_acl(Bucket=bucket, Key=k)["Grants"]
        return any(g["Grantee"].get("URI") == all_users for g in grants)

    assert public(key)
    private = testing.activate_root(
        pca, "crl private", revocation=crl_config(bucket, S3ObjectAcl="BUCKET_OWNER_FULL_CONTROL")
    )
    assert not public(f"crl/{ca_id(private)}.crl")
    orphan = testing.activate_root(pca, "crl no bucket", revocation=crl_config(bucket + "-missing"))
    cert = issue_and_get(pca, orphan, make_csr("orphan")[0])["cert"]
    serial = format(x509.load_pem_x509_certificate(cert.encode()).serial_number, "x")
    pca.revoke_certificate(CertificateAuthorityArn=orphan, CertificateSerial=serial, RevocationReason="SUPERSEDED")


def test_crl_delay_switch_defers_publication(scoped, s3, bucket):
    """With crl_delay_seconds=3 (scoped switch) the CRL written before the revocation is still the
    current one when RevokeCertificate answers; the next CRL, listing the serial, appears later.
    The default is 0 (published before RevokeCertificate answers)."""
    _, pca, set_switches = scoped
    root = testing.activate_root(pca, "crl delayed", revocation=crl_config(bucket))
    cert = issue_and_get(pca, root, make_csr("delayed")[0])["cert"]
    serial = x509.load_pem_x509_certificate(cert.encode()).serial_number
    set_switches(crl_delay_seconds=3)
    pca.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=format(serial, "x"),
                           RevocationReason="KEY_COMPROMISE")
    _, crl = fetch_crl(s3, bucket, root)
    assert crl.get_revoked_certificate_by_serial_number(serial) is None
    deadline = time.monotonic() + 30
    while crl.get_revoked_certificate_by_serial_number(serial) is None:
        assert time.monotonic() < deadline, "the delayed CRL never appeared"
        time.sleep(0.2)  # polling an S3 object with a deadline, as a relying party would
        _, crl = fetch_crl(s3, bucket, root)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
