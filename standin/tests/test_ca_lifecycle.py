"""Deleting and restoring a private CA, as AWS Private CA answers.

Stock moto 5.2.5 deletes an ACTIVE CA, accepts any PermanentDeletionTimeInDays, shows no
RestorableUntil and answers RestoreCertificateAuthority with HTTP 500: every test fails there.
"""

import time

import pytest
from botocore.exceptions import ClientError

from hsm_demo_standin import testing


def code(e):
    return e.value.response["Error"]["Code"]


def describe(pca, arn):
    return pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]


def test_active_ca_cannot_be_deleted(pca):
    """DeleteCertificateAuthority on an ACTIVE CA -> InvalidStateException; the CA stays ACTIVE and
    keeps issuing."""
    root = testing.activate_root(pca, "lifecycle active")
    with pytest.raises(ClientError) as e:
        pca.delete_certificate_authority(CertificateAuthorityArn=root, PermanentDeletionTimeInDays=7)
    assert code(e) == "InvalidStateException"
    assert describe(pca, root)["Status"] == "ACTIVE"
    testing.issue_and_get(pca, root, testing.make_csr("still active")[0])


@pytest.fixture(scope="module")
def unchecked(endpoint):
    """A client that sends what it is given (botocore checks minimums itself; the Rust SDK does not)."""
    import boto3
    from botocore.config import Config

    return boto3.client("acm-pca", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(parameter_validation=False))


@pytest.mark.parametrize("days", [6, 31, 0])
def test_permanent_deletion_time_must_be_7_to_30(pca, unchecked, days):
    """PermanentDeletionTimeInDays outside 7..30 -> ValidationException, and nothing is deleted."""
    ca = testing.create_ca(pca, "ROOT", f"lifecycle days {days}")
    with pytest.raises(ClientError) as e:
        unchecked.delete_certificate_authority(CertificateAuthorityArn=ca, PermanentDeletionTimeInDays=days)
    assert code(e) == "ValidationException"
    assert "permanentDeletionTimeInDays" in e.value.response["Error"]["Message"]
    assert describe(pca, ca)["Status"] == "PENDING_CERTIFICATE"


def test_deleted_ca_is_restorable_then_restored_to_disabled(pca):
    """A disabled CA deleted with 7 days is DELETED with RestorableUntil = now + 7 days (also in
    ListCertificateAuthorities), cannot be deleted again or re-enabled; RestoreCertificateAuthority
    returns it to DISABLED, and UpdateCertificateAuthority can then activate it again."""
    root = testing.activate_root(pca, "lifecycle restore")
    pca.update_certificate_authority(CertificateAuthorityArn=root, Status="DISABLED")
    before = time.time()
    pca.delete_certificate_authority(CertificateAuthorityArn=root, PermanentDeletionTimeInDays=7)
    got = describe(pca, root)
    assert got["Status"] == "DELETED"
    assert abs(got["RestorableUntil"].timestamp() - (before + 7 * 86400)) < 120
    listed = [c for c in pca.list_certificate_authorities()["CertificateAuthorities"] if c["Arn"] == root]
    assert listed[0]["Status"] == "DELETED" and "RestorableUntil" in listed[0]
    with pytest.raises(ClientError) as e:
        pca.delete_certificate_authority(CertificateAuthorityArn=root)
    assert code(e) == "InvalidStateException"
    with pytest.raises(ClientError) as e:
        pca.update_certificate_authority(CertificateAuthorityArn=root, Status="ACTIVE")
    assert code(e) == "InvalidStateException"
    pca.restore_certificate_authority(CertificateAuthorityArn=root)
    got = describe(pca, root)
    assert got["Status"] == "DISABLED" and "RestorableUntil" not in got
    with pytest.raises(ClientError) as e:
        pca.restore_certificate_authority(CertificateAuthorityArn=root)
    assert code(e) == "InvalidStateException"
    pca.update_certificate_authority(CertificateAuthorityArn=root, Status="ACTIVE")
    testing.issue_and_get(pca, root, testing.make_csr("restored")[0])


def test_pending_ca_deleted_with_default_period_restores_to_pending(pca):
    """A CA deleted before it got a certificate: restorable for 30 days by default, restored to
    PENDING_CERTIFICATE (its CSR still available)."""
    ca = testing.create_ca(pca, "SUBORDINATE", "lifecycle pending")
    before = time.time()
    pca.delete_certificate_authority(CertificateAuthorityArn=ca)
    assert abs(describe(pca, ca)["RestorableUntil"].timestamp() - (before + 30 * 86400)) < 120
    pca.restore_certificate_authority(CertificateAuthorityArn=ca)
    assert describe(pca, ca)["Status"] == "PENDING_CERTIFICATE"
    assert pca.get_certificate_authority_csr(CertificateAuthorityArn=ca)["Csr"].startswith("-----BEGIN")
