"""Audit reports as AWS Private CA writes them (stock moto answers both calls with HTTP 500).

CreateCertificateAuthorityAuditReport(CertificateAuthorityArn, S3BucketName,
AuditReportResponseFormat JSON|CSV) -> {AuditReportId, S3Key = audit-report/<ca-id>/<id>.json|.csv}.
The report lists every certificate the CA issued (as of the call), one record each with AWS's fields:
awsAccountId, requestedByServicePrincipal (only for certificates a service requested: never here),
certificateArn, serial (colon-separated lower-case hex), subject (RFC 2253), notBefore, notAfter,
issuedAt, revokedAt and revocationReason (revoked ones only), templateArn; times as
`2020-02-26T18:39:57+0000`. JSON is an array of objects without the absent keys; CSV has a header
line and every column.

DescribeCertificateAuthorityAuditReport -> {AuditReportStatus, S3BucketName, S3Key, CreatedAt}:
CREATING for the first `audit_report_pending_describes` calls (switch, default 1), then SUCCESS —
the object is written to the bucket at that moment — or FAILED when the bucket does not exist.
One report per CA per `audit_report_interval_seconds` (switch, default 1800 = AWS's 30 minutes):
another one sooner is RequestInProgressException. A DELETED CA is InvalidStateException.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random

from . import acmpca
from .config import SWITCHES

FIELDS = (
    "awsAccountId",
    "requestedByServicePrincipal",
    "certificateArn",
    "serial",
    "subject",
    "notBefore",
    "notAfter",
    "issuedAt",
    "revokedAt",
    "revocationReason",
    "templateArn",
)


@dataclass
class Report:
    id: str
    bucket: str
    key: str
    created_at: float
    body: bytes
    pending: int
    status: str = "CREATING"


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _serial(n: int) -> str:
    h = format(n, "x")
    h = "0" * (len(h) % 2) + h
    return ":".join(h[i : i + 2] for i in range(0, len(h), 2))


def entries(ca: Any) -> list[dict[str, str]]:
    out = []
    for rec in list(ca.records.values()):
        if rec.failed or not rec.pem:
            continue
        cert = x509.load_pem_x509_certificate(rec.pem)
        e = {
            "awsAccountId": ca.account_id,
            "certificateArn": rec.arn,
            "serial": _serial(cert.serial_number),
            "subject": cert.subject.rfc4514_string(),
            "notBefore": _time(cert.not_valid_before_utc),
            "notAfter": _time(cert.not_valid_after_utc),
            "issuedAt": _time(rec.extra.get("issued_at") or cert.not_valid_before_utc),
        }
        if rec.revoked is not None:
            when = dt.datetime.fromtimestamp(float(rec.revoked["revocation_time"]), dt.timezone.utc)
            e["revokedAt"] = _time(when)
            e["revocationReason"] = str(rec.revoked.get("revocation_reason"))
        e["templateArn"] = rec.extra.get("template_arn") or acmpca.DEFAULT_TEMPLATE
        out.append(e)
    return out


def render(rows: list[dict[str, str]], fmt: str) -> bytes:
    if fmt == "JSON":
        return json.dumps(rows).encode()
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def _s3(ca: Any) -> Any:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    return s3_backends[ca.account_id][get_partition(ca.region_name)]


def _finish(ca: Any, report: Report) -> None:
    """CREATING -> SUCCESS (object written) or FAILED (no such bucket)."""
    from moto.s3.exceptions import MissingBucket

    try:
        _s3(ca).put_object(report.bucket, report.key, report.body)
        report.status = "SUCCESS"
    except MissingBucket:
        report.status = "FAILED"


def create(backend: Any, params: dict[str, Any]) -> Report:
    fmt = params.get("AuditReportResponseFormat")
    bucket = params.get("S3BucketName")
    if fmt not in ("JSON", "CSV"):
        raise acmpca.ValidationException(
            f"1 validation error detected: Value '{fmt}' at 'auditReportResponseFormat' failed to satisfy "
            "constraint: Member must satisfy enum value set: [JSON, CSV]"
        )
    if not isinstance(bucket, str) or not 3 <= len(bucket) <= 255:
        raise acmpca.ValidationException(
            "1 validation error detected: Value at 's3BucketName' failed to satisfy constraint: "
            "Member must have length between 3 and 255"
        )
    ca = acmpca._ca(backend, params.get("CertificateAuthorityArn"))
    cfg = SWITCHES.get()
    with ca.lock:
        if ca.status in ("DELETED", "CREATING", "FAILED"):
            raise acmpca.InvalidStateException(
                f"The certificate authority {ca.arn} is in state {ca.status} and cannot create an audit report."
            )
        now = time.monotonic()
        last = getattr(ca, "audit_report_at", None)
        if last is not None and now - last < cfg["audit_report_interval_seconds"]:
            raise acmpca.RequestInProgressException(
                f"An audit report for {ca.arn} was created less than "
                f"{cfg['audit_report_interval_seconds']:.0f} seconds ago; one report per CA per 30 minutes."
            )
        rid = str(mock_random.uuid4())
        key = f"audit-report/{ca.id}/{rid}.{fmt.lower()}"
        report = Report(rid, bucket, key, unix_time(), render(entries(ca), fmt), cfg["audit_report_pending_describes"])
        ca.audit_report_at = now
        ca.audit_reports = {**getattr(ca, "audit_reports", {}), rid: report}
    if report.pending <= 0:
        _finish(ca, report)
    return report


def describe(backend: Any, params: dict[str, Any]) -> Report:
    ca = acmpca._ca(backend, params.get("CertificateAuthorityArn"))
    rid = params.get("AuditReportId")
    with ca.lock:
        report = getattr(ca, "audit_reports", {}).get(rid)
        if report is None:
            raise acmpca.ResourceNotFoundException(f"Could not find audit report {rid} for {ca.arn}.")
        if report.status == "CREATING":
            if report.pending > 0:
                report.pending -= 1
            else:
                _finish(ca, report)
        return report


def response_create(self: Any) -> str:
    report = create(self.acmpca_backend, json.loads(self.body))
    return json.dumps({"AuditReportId": report.id, "S3Key": report.key})


def response_describe(self: Any) -> str:
    report = describe(self.acmpca_backend, json.loads(self.body))
    return json.dumps(
        {
            "AuditReportStatus": report.status,
            "S3BucketName": report.bucket,
            "S3Key": report.key,
            "CreatedAt": report.created_at,
        }
    )


def install() -> None:
    from moto.acmpca import responses as r

    r.ACMPCAResponse.create_certificate_authority_audit_report = response_create  # type: ignore[attr-defined]
    r.ACMPCAResponse.describe_certificate_authority_audit_report = response_describe  # type: ignore[attr-defined]
