"""Switch `reissue_serial`: the CA signs a new certificate with the serial of the last one it
issued (a broken CA), so hsm-demo's "serials are unique per CA" registry condition can be tested.
Stock moto has no switch (HTTP 404 on /_standin/config)."""

from cryptography import x509

from hsm_demo_standin.testing import make_csr


def _issue(pca, ca, cn):
    return pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr(cn)[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Type": "DAYS", "Value": 1},
    )["CertificateArn"]


def _serial(pca, ca, arn):
    pem = pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.serial_number, cert.subject.rfc4514_string()


def test_reissue_serial_repeats_the_last_serial_under_a_new_arn(scoped, hierarchy, pca):
    _, scoped_pca, set_switches = scoped
    ca = hierarchy["issuing_arn"]
    first = _issue(scoped_pca, ca, "first")
    set_switches(reissue_serial=True)
    second = _issue(scoped_pca, ca, "second")
    assert second != first
    s1, subj1 = _serial(scoped_pca, ca, first)
    s2, subj2 = _serial(scoped_pca, ca, second)
    assert s1 == s2 and subj1 != subj2, (s1, s2, subj1, subj2)
    # Other access keys are unaffected: a new serial.
    third = _issue(pca, ca, "third")
    assert _serial(pca, ca, third)[0] != s1
    set_switches(reissue_serial=False)
    assert _serial(scoped_pca, ca, _issue(scoped_pca, ca, "fourth"))[0] not in (s1,)
