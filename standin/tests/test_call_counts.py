"""Every API request counted per access key id and operation (`GET /_standin/calls`).

Rust tests assert exact call counts with it ("no AWS call before the HSM login", "RevokeCertificate
sent once", "a rerun calls nothing"). Counted as the request arrives — throttled and fault-injected
requests included — for every service. Stock moto has no such endpoint (HTTP 404).
"""

import os

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing
from hsm_demo_standin.testing import make_csr


def test_calls_counted_per_key_and_operation_throttled_ones_included(scoped, hierarchy, endpoint):
    akid, pca, set_switches = scoped
    assert testing.calls(endpoint, akid) == {"total": 0, "operations": {}}
    ca = hierarchy["issuing_arn"]
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca, Csr=make_csr("calls")[0], SigningAlgorithm="SHA256WITHECDSA",
        Validity={"Type": "DAYS", "Value": 1},
    )["CertificateArn"]
    pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)
    pca.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)
    ddb = testing.client(endpoint, service="dynamodb", access_key=akid)
    with pytest.raises(ClientError):
        ddb.describe_table(TableName="no-such-table-for-calls")
    # A request answered by an injected fault is a call too (it reached the stand-in).
    set_switches(fault_5xx_probability=1.0, fault_operations=["RevokeCertificate"])
    with pytest.raises(ClientError) as e:
        pca.revoke_certificate(CertificateAuthorityArn=ca, CertificateSerial="01", RevocationReason="UNSPECIFIED")
    assert e.value.response["Error"]["Code"] in ("ServiceUnavailable", "InternalFailure")
    got = testing.calls(endpoint, akid)
    assert got == {
        "total": 5,
        "operations": {"IssueCertificate": 1, "GetCertificate": 2, "DescribeTable": 1, "RevokeCertificate": 1},
    }, got
    # Another key's calls are its own.
    other = testing.calls(endpoint, akid + "X")
    assert other == {"total": 0, "operations": {}}


def test_calls_reset_with_the_stats_and_moto_reset():
    """Own server: resetting clears every key's counts (the session's other tests keep theirs)."""
    if os.environ.get("STANDIN_TEST_STOCK") == "1":
        pytest.skip("stock moto has no /_standin/calls")
    server = testing.start_server()
    try:
        pca = testing.client(server.url, access_key="AKIARESETCALLS")
        for path in ("/_standin/stats/reset", "/moto-api/reset"):
            with pytest.raises(ClientError):
                pca.describe_certificate_authority(
                    CertificateAuthorityArn="arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/x")
            assert testing.calls(server.url, "AKIARESETCALLS")["total"] == 1
            testing.control(server.url, {}, path=path)
            assert testing.calls(server.url, "AKIARESETCALLS") == {"total": 0, "operations": {}}
    finally:
        server.stop()
