"""ACM PCA behaviours of the stand-in that hsm-demo depends on.

Each test's docstring says what stock moto 5.2.5 does instead.
"""

import datetime as dt
import subprocess
import time

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hsm_demo_standin import testing
from hsm_demo_standin.testing import TEMPLATE, issue_and_get, make_csr

UTC = dt.timezone.utc


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# ---------------------------------------------------------------- 1. idempotency


def test_idempotency_token_returns_same_certificate(pca, hierarchy):
    """Same token, same CA, within the window -> same certificate ARN.
    Stock moto ignores IdempotencyToken and issues a second certificate."""
    ca = hierarchy["issuing_arn"]
    csr, _ = make_csr("idem")
    kw = dict(CertificateAuthorityArn=ca, Csr=csr, SigningAlgorithm="SHA256WITHECDSA",
              Validity={"Type": "DAYS", "Value": 1}, IdempotencyToken="tok-same-1")
    first = pca.issue_certificate(**kw)["CertificateArn"]
    second = pca.issue_certificate(**kw)["CertificateArn"]
    other = pca.issue_certificate(**{**kw, "IdempotencyToken": "tok-other-1"})["CertificateArn"]
    assert first == second
    assert other != first


def test_idempotency_token_is_keyed_per_ca(pca, hierarchy):
    """The same token on two different CAs gives two certificates, each from its own CA.
    Stock moto ignores the token (so this passes there only by accident of ignoring it); the
    window test below is the one that pins the window."""
    csr, _ = make_csr("idem-per-ca")
    kw = dict(Csr=csr, SigningAlgorithm="SHA256WITHECDSA", Validity={"Type": "DAYS", "Value": 1},
              IdempotencyToken="tok-per-ca")
    a = pca.issue_certificate(CertificateAuthorityArn=hierarchy["issuing_arn"], **kw)["CertificateArn"]
    b = pca.issue_certificate(CertificateAuthorityArn=hierarchy["intermediate_arn"], **kw)["CertificateArn"]
    assert a.startswith(hierarchy["issuing_arn"] + "/certificate/")
    assert b.startswith(hierarchy["intermediate_arn"] + "/certificate/")
    again = pca.issue_certificate(CertificateAuthorityArn=hierarchy["issuing_arn"], **kw)["CertificateArn"]
    assert again == a


def test_idempotency_window_is_configurable_and_expires(scoped, hierarchy, endpoint):
    """With the window set to 0 s (switch scoped to this test's access key), a repeated token
    issues a new certificate; the default window is 300 s.
    Stock moto has no window (no control endpoint: 404) and never honours the token."""
    _, pca, set_switches = scoped
    assert testing.control(endpoint)["global"]["idempotency_window_seconds"] == 300
    set_switches(idempotency_window_seconds=0)
    csr, _ = make_csr("idem-window")
    kw = dict(CertificateAuthorityArn=hierarchy["issuing_arn"], Csr=csr, SigningAlgorithm="SHA256WITHECDSA",
              Validity={"Type": "DAYS", "Value": 1}, IdempotencyToken="tok-window")
    a = pca.issue_certificate(**kw)["CertificateArn"]
    b = pca.issue_certificate(**kw)["CertificateArn"]
    assert a != b
    set_switches(idempotency_window_seconds=300)
    c = pca.issue_certificate(**kw)["CertificateArn"]
    assert pca.issue_certificate(**kw)["CertificateArn"] == c


def test_certificate_arn_ends_with_the_serial(pca, hierarchy):
    """Like AWS, the certificate ARN ends in the certificate's serial number (hex).
    Stock moto uses a random UUID unrelated to the serial."""
    got = issue_and_get(pca, hierarchy["issuing_arn"], make_csr("serial")[0])
    serial = load(got["cert"]).serial_number
    assert int(got["arn"].rsplit("/", 1)[1], 16) == serial


# ---------------------------------------------------------------- 2. validity


def _issue_with_validity(pca, ca, validity, **extra):
    return load(issue_and_get(pca, ca, make_csr("validity")[0], validity=validity, **extra)["cert"])


@pytest.mark.parametrize(
    "validity,expected",
    [
        ({"Type": "DAYS", "Value": 7}, lambda now: now + dt.timedelta(days=7)),
        ({"Type": "MONTHS", "Value": 2}, None),
        ({"Type": "YEARS", "Value": 2}, lambda now: now.replace(year=now.year + 2)),
        ({"Type": "ABSOLUTE", "Value": 1900000000}, lambda now: dt.datetime.fromtimestamp(1900000000, UTC)),
        ({"Type": "END_DATE", "Value": 291231235959}, lambda now: dt.datetime(2029, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ({"Type": "END_DATE", "Value": 20300630120000}, lambda now: dt.datetime(2030, 6, 30, 12, 0, tzinfo=UTC)),
    ],
    ids=["days", "months", "years", "absolute", "end_date_utctime", "end_date_generalized"],
)
def test_validity_types(pca, hierarchy, validity, expected):
    """Validity DAYS/MONTHS/YEARS/ABSOLUTE/END_DATE sets NotAfter; NotBefore = issuance - 60 min.
    Stock moto always issues for 365 days from now."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    cert = _issue_with_validity(pca, hierarchy["issuing_arn"], validity)
    if expected is None:  # MONTHS: calendar months
        month = now.month - 1 + 2
        want = now.replace(year=now.year + month // 12, month=month % 12 + 1, day=min(now.day, 28))
        assert abs((cert.not_valid_after_utc - want).total_seconds()) < 4 * 86400
        assert cert.not_valid_after_utc.month == want.month
    else:
        assert abs((cert.not_valid_after_utc - expected(now)).total_seconds()) <= 5
    assert abs((cert.not_valid_before_utc - (now - dt.timedelta(minutes=60))).total_seconds()) <= 5


def test_validity_not_before_is_honoured(pca, hierarchy):
    """ValidityNotBefore (ABSOLUTE) sets the certificate's NotBefore.
    Stock moto ignores it (NotBefore = now)."""
    start = int(time.time()) + 3600
    cert = _issue_with_validity(
        pca, hierarchy["issuing_arn"], {"Type": "DAYS", "Value": 3},
        ValidityNotBefore={"Type": "ABSOLUTE", "Value": start},
    )
    assert int(cert.not_valid_before_utc.timestamp()) == start


def test_validity_beyond_issuing_ca_is_rejected(pca, hierarchy):
    """A NotAfter past the issuing CA's NotAfter -> ValidationException, as AWS answers.
    Stock moto issues a 365-day certificate whatever the CA's validity (and ignores Validity)."""
    ca_cert = load(pca.get_certificate_authority_certificate(
        CertificateAuthorityArn=hierarchy["issuing_arn"])["Certificate"])
    beyond = int(ca_cert.not_valid_after_utc.timestamp()) + 86400
    with pytest.raises(ClientError) as e:
        _issue_with_validity(pca, hierarchy["issuing_arn"], {"Type": "ABSOLUTE", "Value": beyond})
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        _issue_with_validity(pca, hierarchy["issuing_arn"], {"Type": "YEARS", "Value": 20})
    assert error_code(e) == "ValidationException"


def test_validity_in_the_past_is_rejected(pca, hierarchy):
    """An ABSOLUTE end date in the past -> ValidationException.
    Stock moto ignores Validity and issues anyway."""
    with pytest.raises(ClientError) as e:
        _issue_with_validity(pca, hierarchy["issuing_arn"], {"Type": "ABSOLUTE", "Value": 1000000000})
    assert error_code(e) == "ValidationException"


# ---------------------------------------------------------------- 3. key and signing algorithms


@pytest.mark.parametrize(
    "key_alg,sig_alg,check",
    [
        ("EC_prime256v1", "SHA256WITHECDSA", lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp256r1"),
        ("EC_secp384r1", "SHA384WITHECDSA", lambda k: isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name == "secp384r1"),
        ("RSA_2048", "SHA256WITHRSA", lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 2048),
        ("RSA_3072", "SHA384WITHRSA", lambda k: isinstance(k, rsa.RSAPublicKey) and k.key_size == 3072),
    ],
)
def test_ca_key_algorithm_and_signing_algorithm(pca, key_alg, sig_alg, check):
    """The CA key is of the requested KeyAlgorithm and certificates are signed with the requested
    SigningAlgorithm. Stock moto always makes an RSA-2048 key and signs with SHA-512."""
    root = testing.activate_root(pca, f"alg {key_alg}", key_alg=key_alg, sig_alg=sig_alg)
    root_cert = load(pca.get_certificate_authority_certificate(CertificateAuthorityArn=root)["Certificate"])
    assert check(root_cert.public_key())
    want_hash = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384}[sig_alg[:6]]
    assert isinstance(root_cert.signature_hash_algorithm, want_hash)
    leaf = load(issue_and_get(pca, root, make_csr("alg-leaf")[0], sig_alg=sig_alg)["cert"])
    assert isinstance(leaf.signature_hash_algorithm, want_hash)
    leaf.verify_directly_issued_by(root_cert)


def test_signing_algorithm_must_match_the_ca_key(pca, hierarchy):
    """SHA256WITHRSA on an EC CA -> InvalidArgsException.
    Stock moto ignores SigningAlgorithm and signs with RSA/SHA-512."""
    with pytest.raises(ClientError) as e:
        issue_and_get(pca, hierarchy["issuing_arn"], make_csr("mismatch")[0], sig_alg="SHA256WITHRSA")
    assert error_code(e) == "InvalidArgsException"


# ---------------------------------------------------------------- 4. templates


def _ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


@pytest.mark.parametrize("path_len", [0, 1, 2, 3])
def test_subordinate_templates_set_ca_pathlen(pca, hierarchy, path_len):
    """SubordinateCACertificate_PathLenN/V1 -> critical CA:TRUE pathlen N, critical keyCertSign+cRLSign,
    SKI from the CSR, AKI = the issuer's SKI. Stock moto adds no extension at all for these templates."""
    csr, key = make_csr(f"sub pathlen {path_len}")
    cert = load(issue_and_get(pca, hierarchy["root_arn"], csr, f"SubordinateCACertificate_PathLen{path_len}/V1",
                              {"Type": "YEARS", "Value": 1})["cert"])
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == path_len
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and ku.value.digital_signature
    assert _ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    root = load(_root_pem(pca, hierarchy))
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == _ext(root, x509.SubjectKeyIdentifier).value.digest


def _root_pem(pca, hierarchy):
    return pca.get_certificate_authority_certificate(CertificateAuthorityArn=hierarchy["root_arn"])["Certificate"]


@pytest.mark.parametrize(
    "template,ku,eku",
    [
        ("EndEntityCertificate/V1", {"digital_signature", "key_encipherment"},
         {x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH}),
        ("EndEntityClientAuthCertificate/V1", {"digital_signature", "key_encipherment"},
         {x509.ExtendedKeyUsageOID.CLIENT_AUTH}),
        ("EndEntityServerAuthCertificate/V1", {"digital_signature", "key_encipherment"},
         {x509.ExtendedKeyUsageOID.SERVER_AUTH}),
    ],
)
def test_end_entity_templates(pca, hierarchy, template, ku, eku):
    """End-entity templates: critical CA:FALSE, their key usages and EKUs, SKI/AKI, SANs from the CSR.
    Stock moto gives EndEntityClientAuth/ServerAuth only the SAN (no CA:FALSE, no KU, no EKU)."""
    csr, _ = make_csr("ee", sans=["ee.example", "alt.example"])
    cert = load(issue_and_get(pca, hierarchy["issuing_arn"], csr, template)["cert"])
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    k = _ext(cert, x509.KeyUsage)
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
    assert k.critical and {n for n in names if getattr(k.value, n)} == ku
    assert set(_ext(cert, x509.ExtendedKeyUsage).value) == eku
    assert _ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["ee.example", "alt.example"]
    _ext(cert, x509.SubjectKeyIdentifier)
    issuing = load(pca.get_certificate_authority_certificate(CertificateAuthorityArn=hierarchy["issuing_arn"])["Certificate"])
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == _ext(issuing, x509.SubjectKeyIdentifier).value.digest


def _openssl_verify(tmp_path, leaf_pem, chain_pem, purpose):
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "untrusted.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain[:-1]))
    (tmp_path / "leaf.pem").write_text(leaf_pem + "\n")
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", str(tmp_path / "root.pem"),
         "-untrusted", str(tmp_path / "untrusted.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True,
    )


def test_three_tier_chain_passes_openssl_strict_sslclient(pca, hierarchy, tmp_path):
    """root -> PathLen1 -> PathLen0 -> client-auth leaf verifies with `openssl verify -x509_strict
    -purpose sslclient`, and the same leaf fails -purpose sslserver (the EKU is real).
    Stock moto: the PathLen templates add no extensions, so the chain fails (invalid CA certificate)."""
    got = issue_and_get(pca, hierarchy["issuing_arn"], make_csr("client-leaf", sans=["client.example"])[0],
                        "EndEntityClientAuthCertificate/V1")
    ok = _openssl_verify(tmp_path, got["cert"], got["chain"], "sslclient")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().endswith(": OK")
    bad = _openssl_verify(tmp_path, got["cert"], got["chain"], "sslserver")
    assert bad.returncode != 0


def test_three_tier_chain_passes_openssl_strict_sslserver(pca, hierarchy, tmp_path):
    """The server-auth template's leaf verifies with -x509_strict -purpose sslserver.
    Stock moto: the chain fails (no CA extensions in PathLen certificates)."""
    got = issue_and_get(pca, hierarchy["issuing_arn"], make_csr("server.example", sans=["server.example"])[0],
                        "EndEntityServerAuthCertificate/V1")
    ok = _openssl_verify(tmp_path, got["cert"], got["chain"], "sslserver")
    assert ok.returncode == 0, ok.stdout + ok.stderr


# ---------------------------------------------------------------- 5. errors


def test_issue_on_disabled_ca_is_invalid_state(pca):
    """IssueCertificate on a DISABLED CA -> InvalidStateException. Stock moto issues anyway."""
    root = testing.activate_root(pca, "to be disabled")
    pca.update_certificate_authority(CertificateAuthorityArn=root, Status="DISABLED")
    with pytest.raises(ClientError) as e:
        issue_and_get(pca, root, make_csr("x")[0])
    assert error_code(e) == "InvalidStateException"
    pca.update_certificate_authority(CertificateAuthorityArn=root, Status="ACTIVE")
    assert issue_and_get(pca, root, make_csr("x")[0])["cert"]


def test_issue_on_pending_subordinate_is_invalid_state(pca):
    """A subordinate CA waiting for its certificate cannot issue. Stock moto issues anyway."""
    sub = testing.create_ca(pca, "SUBORDINATE", "pending sub")
    with pytest.raises(ClientError) as e:
        issue_and_get(pca, sub, make_csr("x")[0])
    assert error_code(e) == "InvalidStateException"


def test_malformed_csr_is_400_malformed_csr(pca, hierarchy):
    """Garbage instead of a CSR -> HTTP 400 MalformedCSRException. Stock moto answers HTTP 500."""
    with pytest.raises(ClientError) as e:
        issue_and_get(pca, hierarchy["issuing_arn"], b"-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n")
    assert error_code(e) == "MalformedCSRException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_csr_with_bad_signature_is_malformed(pca, hierarchy):
    """A CSR whose self-signature does not verify -> MalformedCSRException. Stock moto signs it."""
    csr_pem, _ = make_csr("tampered")
    csr = x509.load_pem_x509_csr(csr_pem)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # flip a bit in the signature
    import base64
    b64 = base64.encodebytes(bytes(der)).decode()
    tampered = f"-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(ClientError) as e:
        issue_and_get(pca, hierarchy["issuing_arn"], tampered)
    assert error_code(e) == "MalformedCSRException"


def test_unknown_certificate_arn_is_resource_not_found(pca, hierarchy):
    """GetCertificate for a certificate that was never issued -> ResourceNotFoundException.
    Stock moto raises KeyError -> HTTP 500."""
    arn = hierarchy["issuing_arn"] + "/certificate/" + "ab" * 16
    with pytest.raises(ClientError) as e:
        pca.get_certificate(CertificateAuthorityArn=hierarchy["issuing_arn"], CertificateArn=arn)
    assert error_code(e) == "ResourceNotFoundException"


# ---------------------------------------------------------------- 6. chain


def test_get_certificate_returns_chain_up_to_root(pca, hierarchy):
    """CertificateChain = issuing CA cert, intermediate, root (PEM, in that order), as AWS returns it.
    Stock moto returns only the issuing CA's certificate."""
    got = issue_and_get(pca, hierarchy["issuing_arn"], make_csr("chain")[0])
    chain = x509.load_pem_x509_certificates(got["chain"].encode())
    expect = [pca.get_certificate_authority_certificate(CertificateAuthorityArn=hierarchy[k])["Certificate"]
              for k in ("issuing_arn", "intermediate_arn", "root_arn")]
    assert [c.public_bytes(serialization.Encoding.PEM) for c in chain] == [load(p).public_bytes(serialization.Encoding.PEM) for p in expect]
    load(got["cert"]).verify_directly_issued_by(chain[0])


# ---------------------------------------------------------------- revocation


def test_revoke_accepts_aws_serial_forms(pca, hierarchy):
    """RevokeCertificate takes the hex serial as `openssl x509 -text` prints it (colon-separated,
    lower case), upper case, or plain hex; a second revoke -> RequestAlreadyProcessedException;
    an unknown serial -> ResourceNotFoundException. Stock moto records any string and never
    answers either error."""
    ca = hierarchy["issuing_arn"]
    forms = []
    for i in range(3):
        serial = load(issue_and_get(pca, ca, make_csr(f"revoke-{i}")[0])["cert"]).serial_number
        h = format(serial, "x")
        h = "0" * (len(h) % 2) + h
        forms.append([":".join(h[j:j + 2] for j in range(0, len(h), 2)),
                      ":".join(h[j:j + 2] for j in range(0, len(h), 2)).upper(), h][i])
    for form in forms:
        pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=form, RevocationReason="SUPERSEDED")
    with pytest.raises(ClientError) as e:
        pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial=forms[2].upper(), RevocationReason="SUPERSEDED")
    assert error_code(e) == "RequestAlreadyProcessedException"
    with pytest.raises(ClientError) as e:
        pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial="0123456789abcdef", RevocationReason="SUPERSEDED")
    assert error_code(e) == "ResourceNotFoundException"


# ---------------------------------------------------------------- 9. speed


def test_issuance_is_fast_with_rsa_ca(pca):
    """60 IssueCertificate + GetCertificate on an RSA-2048 CA in under 4 s: the CA key object is
    cached. Stock moto reloads (decrypts) the CA's PEM key on every use (~36 ms, several times per
    issue) and manages about 10 issues/s, i.e. > 6 s here."""
    root = testing.activate_root(pca, "speed rsa", key_alg="RSA_2048", sig_alg="SHA256WITHRSA")
    csr, _ = make_csr("speed")
    t0 = time.monotonic()
    for _ in range(60):
        issue_and_get(pca, root, csr, sig_alg="SHA256WITHRSA")
    elapsed = time.monotonic() - t0
    assert elapsed < 4.0, f"60 issues took {elapsed:.2f}s"


def test_api_passthrough_template_sets_subject_and_sans(pca, hierarchy):
    """EndEntityCertificate_APIPassthrough/V1 takes Subject and SANs from ApiPassthrough.
    Stock moto ignores ApiPassthrough and the template (no extensions at all)."""
    csr, _ = make_csr("from-csr", sans=["csr.example"])
    cert = load(issue_and_get(
        pca, hierarchy["issuing_arn"], csr, "EndEntityCertificate_APIPassthrough/V1",
        ApiPassthrough={"Subject": {"CommonName": "from-api"},
                        "Extensions": {"SubjectAlternativeNames": [{"DnsName": "api.example"},
                                                                   {"IpAddress": "10.0.0.7"}]}},
    )["cert"])
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "from-api"
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.example"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert not _ext(cert, x509.BasicConstraints).value.ca
