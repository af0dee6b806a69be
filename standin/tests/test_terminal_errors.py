"""Terminal AWS Private CA errors on demand, and the per-CA call counters (`GET /_standin/stats`).

- `issue_limit_exceeded`: IssueCertificate answers 400 `LimitExceededException` (botocore's
  acm-pca model: an IssueCertificate error, structure {message}).
- `fail_issuance` (true or a probability): a new issuance is accepted (an ARN comes back) but ends
  in a failed state: GetCertificate answers 400 `RequestFailedException` (a GetCertificate error
  in the model), no certificate exists.
- `GET /_standin/stats[?ca_arn=ARN]`: per CA, IssueCertificate calls / issued / failed /
  idempotent replays / errors by code, GetCertificate calls / errors by code.

Stock moto 5.2.5 has none of this: its server answers 404 on /_standin/config and /_standin/stats,
and it never raises LimitExceeded or RequestFailed — every test here fails there.
"""

import threading
import urllib.error

import pytest
from botocore.exceptions import ClientError, WaiterError

from hsm_demo_standin import testing
from hsm_demo_standin.testing import make_csr

VALIDITY = {"Type": "DAYS", "Value": 1}


def _issue(pca, ca, token=None, csr=None):
    kw = {"IdempotencyToken": token} if token else {}
    return pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=csr or make_csr("t")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity=VALIDITY, **kw,
    )["CertificateArn"]


@pytest.fixture
def fresh_ca(pca, hierarchy):
    """An ACTIVE issuing CA of this test alone, under the session's intermediate: nothing was
    issued from it yet, so its counters start at zero."""
    return testing.activate_subordinate(pca, hierarchy["intermediate_arn"], "terminal-errors", 0, 1)


def test_issue_limit_exceeded_is_a_modelled_400(scoped, fresh_ca, pca, endpoint):
    """issue_limit_exceeded=true for this test's key: IssueCertificate raises botocore's modelled
    LimitExceededException (HTTP 400, a message), issues nothing, is counted once per call; an
    earlier token still replays its certificate (no new certificate); other keys are unaffected;
    switching it off issues again. Stock moto: no switch (404), never LimitExceeded."""
    _, spca, set_switches = scoped
    before = _issue(spca, fresh_ca, token="tok-before-limit")
    set_switches(issue_limit_exceeded=True)
    with pytest.raises(spca.exceptions.LimitExceededException) as e:
        _issue(spca, fresh_ca, token="tok-limit")
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Code"] == "LimitExceededException"
    assert "maximum number of certificates" in err["Error"]["Message"]
    assert _issue(spca, fresh_ca, token="tok-before-limit") == before
    other = _issue(pca, fresh_ca)  # the session's key: no limit
    st = testing.stats(endpoint, fresh_ca)["IssueCertificate"]
    assert st == {
        "calls": 4, "issued": 2, "failed": 0, "idempotent_replays": 1,
        "errors": {"LimitExceededException": 1},
    }, st
    set_switches(issue_limit_exceeded=False)
    assert _issue(spca, fresh_ca, token="tok-limit") not in (before, other)


def test_fail_issuance_ends_in_request_failed(scoped, fresh_ca, endpoint):
    """fail_issuance=true: IssueCertificate returns a certificate ARN, GetCertificate raises the
    modelled RequestFailedException (after async_pending_gets RequestInProgress answers), the
    certificate_issued waiter stops on it, no certificate exists (revoking its serial is
    ResourceNotFound), the same token replays the same failed ARN; off again, issuance works.
    Stock moto: no switch, GetCertificate always returns the certificate."""
    _, spca, set_switches = scoped
    set_switches(fail_issuance=True, async_pending_gets=1)
    arn = _issue(spca, fresh_ca, token="tok-fail")
    assert arn.startswith(fresh_ca + "/certificate/")
    with pytest.raises(ClientError) as e:
        spca.get_certificate(CertificateAuthorityArn=fresh_ca, CertificateArn=arn)
    assert e.value.response["Error"]["Code"] == "RequestInProgressException"
    with pytest.raises(spca.exceptions.RequestFailedException) as e:
        spca.get_certificate(CertificateAuthorityArn=fresh_ca, CertificateArn=arn)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "failed" in e.value.response["Error"]["Message"]
    with pytest.raises(WaiterError):
        spca.get_waiter("certificate_issued").wait(
            CertificateAuthorityArn=fresh_ca, CertificateArn=arn, WaiterConfig={"Delay": 0, "MaxAttempts": 5}
        )
    with pytest.raises(ClientError) as e:
        spca.revoke_certificate(
            CertificateAuthorityArn=fresh_ca, CertificateSerial=arn.rsplit("/", 1)[1], RevocationReason="UNSPECIFIED"
        )
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert _issue(spca, fresh_ca, token="tok-fail") == arn
    set_switches(fail_issuance=False, async_pending_gets=0)
    assert _issue(spca, fresh_ca, token="tok-fail") == arn  # AWS's idempotency: same request, same ARN
    ok = _issue(spca, fresh_ca, token="tok-after")
    assert spca.get_certificate(CertificateAuthorityArn=fresh_ca, CertificateArn=ok)["Certificate"].startswith("-----BEGIN")
    st = testing.stats(endpoint, fresh_ca)
    assert st["IssueCertificate"] == {
        "calls": 4, "issued": 1, "failed": 1, "idempotent_replays": 2, "errors": {},
    }, st
    assert st["GetCertificate"]["errors"] == {"RequestInProgressException": 1, "RequestFailedException": 2}
    assert st["GetCertificate"]["calls"] == 4  # pending, failed, the waiter's one poll (failed), ok


def test_fail_issuance_probability_is_partial_and_seeded(scoped, fresh_ca, endpoint):
    """fail_issuance=0.5 with a seed: some issuances fail, some succeed, each counted once."""
    _, spca, set_switches = scoped
    set_switches(fail_issuance=0.5, fault_seed=3)
    failed = ok = 0
    for _ in range(24):
        arn = _issue(spca, fresh_ca)
        try:
            spca.get_certificate(CertificateAuthorityArn=fresh_ca, CertificateArn=arn)
            ok += 1
        except spca.exceptions.RequestFailedException:
            failed += 1
    assert ok >= 4 and failed >= 4, (ok, failed)
    st = testing.stats(endpoint, fresh_ca)["IssueCertificate"]
    assert (st["issued"], st["failed"], st["calls"]) == (ok, failed, 24)


def test_bad_values_of_the_new_switches_are_rejected(endpoint):
    """fail_issuance must be a bool or a probability; issue_limit_exceeded a bool (400 otherwise)."""
    for body in ({"fail_issuance": 2}, {"fail_issuance": "yes"}, {"issue_limit_exceeded": 1}):
        with pytest.raises(urllib.error.HTTPError) as e:
            testing.control(endpoint, {"access_key_id": "AKIABADVALUE", **body})
        assert e.value.code == 400, body
    snap = testing.control(endpoint)["global"]
    assert snap["issue_limit_exceeded"] is False and snap["fail_issuance"] == 0.0


def test_stats_count_issued_replays_and_errors_per_ca(pca, fresh_ca, hierarchy, endpoint):
    """Counters per CA ARN: new certificates, idempotent replays, errors by code, GetCertificate
    calls; `?ca_arn=` filters (an unknown CA reads as zeros); the full listing holds every CA.
    Stock moto: 404."""
    a = _issue(pca, fresh_ca, token="stats-1")
    assert _issue(pca, fresh_ca, token="stats-1") == a
    _issue(pca, fresh_ca, token="stats-2")
    with pytest.raises(ClientError):
        _issue(pca, fresh_ca, csr=b"-----BEGIN CERTIFICATE REQUEST-----\nnot a csr\n-----END CERTIFICATE REQUEST-----\n")
    pca.get_certificate(CertificateAuthorityArn=fresh_ca, CertificateArn=a)
    st = testing.stats(endpoint, fresh_ca)
    assert st["IssueCertificate"] == {
        "calls": 4, "issued": 2, "failed": 0, "idempotent_replays": 1,
        "errors": {"MalformedCSRException": 1},
    }, st
    assert st["GetCertificate"] == {"calls": 1, "errors": {}}
    unknown = fresh_ca[:-4] + "0000"
    assert testing.stats(endpoint, unknown)["IssueCertificate"]["calls"] == 0
    everything = testing.stats(endpoint)["certificate_authorities"]
    assert everything[fresh_ca] == st
    assert hierarchy["root_arn"] in everything  # the session's hierarchy was issued from it


def test_stats_are_exact_and_readable_under_concurrent_issuance(pca, fresh_ca, endpoint):
    """6 threads issue 8 certificates each (half with a repeated token) while another thread reads
    /_standin/stats in a loop: every read answers 200 with JSON, and the final counts are exact.
    (moto's /moto-api/data.json can answer 500 while the backend changes.) Stock moto: 404."""
    errors: list[BaseException] = []
    reads = 0
    done = threading.Event()

    def issuer(n: int) -> None:
        client = testing.client(endpoint)
        try:
            for i in range(8):
                token = f"conc-{n}-{i // 2}"  # each token twice: 4 new + 4 replays per thread
                _issue(client, fresh_ca, token=token)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                testing.stats(endpoint, fresh_ca)
                testing.stats(endpoint)
                reads += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    r = threading.Thread(target=reader)
    r.start()
    threads = [threading.Thread(target=issuer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    r.join()
    assert not errors, errors
    assert reads >= 1
    st = testing.stats(endpoint, fresh_ca)["IssueCertificate"]
    assert st == {"calls": 48, "issued": 24, "failed": 0, "idempotent_replays": 24, "errors": {}}, st
