"""CA audit reports written to S3, as AWS Private CA writes them.

Stock moto 5.2.5 answers CreateCertificateAuthorityAuditReport with HTTP 500: every test fails there.
"""

import csv
import io
import json
import time

import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from hsm_demo_standin import testing
from hsm_demo_standin.testing import issue_and_get, make_csr


@pytest.fixture(scope="module")
def s3(endpoint):
    return testing.client(endpoint, "s3")


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"audit-test-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=name)
    return name


def code(e):
    return e.value.response["Error"]["Code"]


def aws_serial(pem):
    h = format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x")
    h = "0" * (len(h) % 2) + h
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def test_json_report_goes_creating_then_success_with_aws_fields(pca, s3, bucket):
    """The report is CREATING at first (no object yet), then SUCCESS with the object at
    audit-report/<ca-id>/<id>.json: one record per issued certificate with AWS's fields; the revoked
    one carries revokedAt and revocationReason, the others do not."""
    root = testing.activate_root(pca, "audit root")
    kept = issue_and_get(pca, root, make_csr("audit kept")[0], "EndEntityClientAuthCertificate/V1")
    gone = issue_and_get(pca, root, make_csr("audit revoked")[0])
    pca.revoke_certificate(CertificateAuthorityArn=root, CertificateSerial=aws_serial(gone["cert"]),
                           RevocationReason="KEY_COMPROMISE")
    out = pca.create_certificate_authority_audit_report(
        CertificateAuthorityArn=root, S3BucketName=bucket, AuditReportResponseFormat="JSON")
    assert out["S3Key"] == f"audit-report/{root.rsplit('/', 1)[1]}/{out['AuditReportId']}.json"
    first = pca.describe_certificate_authority_audit_report(CertificateAuthorityArn=root,
                                                            AuditReportId=out["AuditReportId"])
    assert first["AuditReportStatus"] == "CREATING"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=out["S3Key"])
    pca.get_waiter("audit_report_created").wait(
        CertificateAuthorityArn=root, AuditReportId=out["AuditReportId"], WaiterConfig={"Delay": 0, "MaxAttempts": 5})
    done = pca.describe_certificate_authority_audit_report(CertificateAuthorityArn=root,
                                                           AuditReportId=out["AuditReportId"])
    assert done["AuditReportStatus"] == "SUCCESS" and done["S3BucketName"] == bucket and done["S3Key"] == out["S3Key"]
    rows = json.loads(s3.get_object(Bucket=bucket, Key=out["S3Key"])["Body"].read())
    by_arn = {r["certificateArn"]: r for r in rows}
    assert len(rows) == 3  # the root's own certificate, kept, revoked
    k = by_arn[kept["arn"]]
    cert = x509.load_pem_x509_certificate(kept["cert"].encode())
    assert k["awsAccountId"] == root.split(":")[4]
    assert k["serial"] == aws_serial(kept["cert"])
    assert k["subject"] == cert.subject.rfc4514_string()
    assert k["notBefore"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert k["notAfter"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert k["issuedAt"].endswith("+0000")
    assert k["templateArn"] == "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1"
    assert "revokedAt" not in k and "revocationReason" not in k
    r = by_arn[gone["arn"]]
    assert r["revocationReason"] == "KEY_COMPROMISE" and r["revokedAt"].endswith("+0000")


def test_csv_report_and_one_report_per_30_minutes(scoped, s3, bucket):
    """A second report within 30 minutes is RequestInProgressException; with the interval switch at
    0 (scoped) it is accepted, and the CSV form has a header with AWS's columns."""
    _, pca, set_switches = scoped
    root = testing.activate_root(pca, "audit csv")
    issue_and_get(pca, root, make_csr("audit csv leaf")[0])
    pca.create_certificate_authority_audit_report(
        CertificateAuthorityArn=root, S3BucketName=bucket, AuditReportResponseFormat="JSON")
    with pytest.raises(ClientError) as e:
        pca.create_certificate_authority_audit_report(
            CertificateAuthorityArn=root, S3BucketName=bucket, AuditReportResponseFormat="CSV")
    assert code(e) == "RequestInProgressException"
    set_switches(audit_report_interval_seconds=0, audit_report_pending_describes=0)
    out = pca.create_certificate_authority_audit_report(
        CertificateAuthorityArn=root, S3BucketName=bucket, AuditReportResponseFormat="CSV")
    assert out["S3Key"].endswith(".csv")
    assert pca.describe_certificate_authority_audit_report(
        CertificateAuthorityArn=root, AuditReportId=out["AuditReportId"])["AuditReportStatus"] == "SUCCESS"
    text = s3.get_object(Bucket=bucket, Key=out["S3Key"])["Body"].read().decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == ["awsAccountId", "requestedByServicePrincipal", "certificateArn", "serial", "subject",
                                 "notBefore", "notAfter", "issuedAt", "revokedAt", "revocationReason", "templateArn"]
    assert len(list(reader)) == 2


def test_report_errors(scoped):
    """A missing bucket ends FAILED; an unknown report id is ResourceNotFoundException; a deleted CA
    is InvalidStateException."""
    _, spca, set_switches = scoped
    set_switches(audit_report_interval_seconds=0, audit_report_pending_describes=0)
    root = testing.activate_root(spca, "audit errors")
    out = spca.create_certificate_authority_audit_report(
        CertificateAuthorityArn=root, S3BucketName="audit-no-such-bucket", AuditReportResponseFormat="JSON")
    assert spca.describe_certificate_authority_audit_report(
        CertificateAuthorityArn=root, AuditReportId=out["AuditReportId"])["AuditReportStatus"] == "FAILED"
    with pytest.raises(ClientError) as e:
        spca.describe_certificate_authority_audit_report(
            CertificateAuthorityArn=root, AuditReportId="11111111-2222-3333-4444-555555555555")
    assert code(e) == "ResourceNotFoundException"
    spca.update_certificate_authority(CertificateAuthorityArn=root, Status="DISABLED")
    spca.delete_certificate_authority(CertificateAuthorityArn=root, PermanentDeletionTimeInDays=7)
    with pytest.raises(ClientError) as e:
        spca.create_certificate_authority_audit_report(
            CertificateAuthorityArn=root, S3BucketName="audit-no-such-bucket", AuditReportResponseFormat="JSON")
    assert code(e) == "InvalidStateException"
