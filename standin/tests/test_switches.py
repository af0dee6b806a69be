"""Run-time switches: asynchronous issuance, throttling, injected faults, reset.

Switches are scoped to each test's own access key id, so the rest of the session is undisturbed.
Stock moto has none of them (its server answers 404 on /_standin/config).
"""

import os

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from hsm_demo_standin import testing
from hsm_demo_standin.testing import make_csr


def _issue(pca, ca):
    return pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr("sw")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Type": "DAYS", "Value": 1},
    )["CertificateArn"]


def test_switches_are_off_by_default(endpoint):
    """Every switch is off at start-up; the throttle quota is AWS's (IssueCertificate 25 TPS).
    Stock moto: no control endpoint (HTTP 404)."""
    g = testing.control(endpoint)["global"]
    assert g["async_pending_gets"] == 0
    assert g["throttle_enabled"] is False
    assert g["throttle_tps"]["IssueCertificate"] == 25
    assert g["fault_5xx_probability"] == 0 and g["fault_drop_probability"] == 0


def test_async_issuance_in_progress_for_first_k_gets(scoped, hierarchy):
    """With async_pending_gets=2, GetCertificate raises RequestInProgressException twice, then
    returns the certificate; botocore's certificate_issued waiter gets through.
    Stock moto returns the certificate at once (and has no switch)."""
    _, pca, set_switches = scoped
    set_switches(async_pending_gets=2)
    ca = hierarchy["issuing_arn"]
    arn = _issue(pca, ca)
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)
        assert e.value.response["Error"]["Code"] == "RequestInProgressException"
    assert pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)["Certificate"].startswith("-----BEGIN")
    arn2 = _issue(pca, ca)
    pca.get_waiter("certificate_issued").wait(
        CertificateAuthorityArn=ca, CertificateArn=arn2, WaiterConfig={"Delay": 0, "MaxAttempts": 5}
    )
    assert pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn2)["Certificate"]


def test_throttling_token_bucket(scoped, hierarchy, pca):
    """throttle_enabled with IssueCertificate at 3 TPS: a burst of 12 back-to-back calls gets at
    most 3 (+1 refilled) through and the rest ThrottlingException; other access keys are not
    throttled. Stock moto never throttles."""
    _, scoped_pca, set_switches = scoped
    set_switches(throttle_enabled=True, throttle_tps={"IssueCertificate": 3})
    ca = hierarchy["issuing_arn"]
    ok = throttled = 0
    for _ in range(12):
        try:
            _issue(scoped_pca, ca)
            ok += 1
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert 3 <= ok <= 5, (ok, throttled)
    assert throttled >= 7
    _issue(pca, ca)  # the session's own key is not throttled


def test_injected_5xx_faults(scoped, hierarchy, endpoint):
    """fault_5xx_probability=1 for IssueCertificate: every call answers 500/503; GetCertificate
    and the moto-api are untouched. Stock moto never fails this way."""
    _, pca, set_switches = scoped
    set_switches(fault_5xx_probability=1.0, fault_operations=["IssueCertificate"], fault_seed=7)
    codes = set()
    for _ in range(6):
        with pytest.raises(ClientError) as e:
            _issue(pca, hierarchy["issuing_arn"])
        codes.add(e.value.response["ResponseMetadata"]["HTTPStatusCode"])
    assert codes <= {500, 503} and codes
    testing.wait_ready(endpoint, deadline_s=5)
    pca.describe_certificate_authority(CertificateAuthorityArn=hierarchy["issuing_arn"])


def test_injected_5xx_probability_is_partial(scoped, hierarchy):
    """fault_5xx_probability=0.5 with a seed: some calls fail, some succeed."""
    _, pca, set_switches = scoped
    set_switches(fault_5xx_probability=0.5, fault_operations=["IssueCertificate"], fault_seed=1)
    ok = failed = 0
    for _ in range(30):
        try:
            _issue(pca, hierarchy["issuing_arn"])
            ok += 1
        except ClientError:
            failed += 1
    assert ok >= 5 and failed >= 5, (ok, failed)


def test_injected_dropped_connections(scoped, hierarchy, pca):
    """fault_drop_probability=1: the connection closes without an answer (the SDK sees a
    connection error, not an HTTP status). Stock moto never drops."""
    _, scoped_pca, set_switches = scoped
    set_switches(fault_drop_probability=1.0, fault_operations=["IssueCertificate"])
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        _issue(scoped_pca, hierarchy["issuing_arn"])
    _issue(pca, hierarchy["issuing_arn"])  # the server is still fine


def test_bad_switch_is_rejected(endpoint):
    """Unknown switches and out-of-range values answer 400 with a reason."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as e:
        testing.control(endpoint, {"fault_5xx_probability": 2})
    assert e.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as e:
        testing.control(endpoint, {"no_such_switch": 1})
    assert e.value.code == 400


def test_moto_api_reset_clears_state_and_switches():
    """POST /moto-api/reset forgets the CAs and restores the start-up switches (own server, so the
    session's hierarchy survives), and clears the call counters of /_standin/stats.
    Stock moto resets CAs but has no switches."""
    server = testing.start_server(stock=os.environ.get("STANDIN_TEST_STOCK") == "1")
    try:
        pca = testing.client(server.url)
        root = testing.activate_root(pca, "reset me")
        testing.control(server.url, {"async_pending_gets": 5})
        testing.control(server.url, {"access_key_id": "AKIARESET", "throttle_enabled": True})
        _issue(pca, root)
        assert testing.stats(server.url, root)["IssueCertificate"]["issued"] == 2  # its own + ours
        testing.control(server.url, {}, path="/moto-api/reset")
        assert testing.stats(server.url) == {"certificate_authorities": {}}
        with pytest.raises(ClientError) as e:
            pca.describe_certificate_authority(CertificateAuthorityArn=root)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
        snap = testing.control(server.url)
        assert snap["global"]["async_pending_gets"] == 0 and snap["scopes"] == {}
    finally:
        server.stop()
