"""CRLs as AWS Private CA publishes them: a DER CRL at `crl/<ca-id>.crl` in the CA's S3 bucket.

A CA whose RevocationConfiguration.CrlConfiguration is Enabled with an S3BucketName gets a CRL
- when it becomes ACTIVE (ImportCertificateAuthorityCertificate) and when UpdateCertificateAuthority
  enables CRLs or activates it;
- after each RevokeCertificate, `crl_delay_seconds` later (switch, default 0: written before
  RevokeCertificate answers; AWS takes about 30 minutes). Revocations that fall inside a pending
  delay are published together, as AWS batches them.
The CRL is v2, signed by the CA's own key with its SigningAlgorithm, issuer = the CA certificate's
subject, thisUpdate = now, nextUpdate = thisUpdate + ExpirationInDays (default 7), extensions AKI
(the CA certificate's SKI) and CRL number (strictly increasing per CA). Each revoked certificate
that has not expired is listed with its revocation date and, unless the reason is UNSPECIFIED
(RFC 5280 says to omit it then), a CRL reason entry extension. The object gets the configured
S3ObjectAcl (PUBLIC_READ unless BUCKET_OWNER_FULL_CONTROL). A bucket that does not exist means
no CRL (AWS reports the failure in CloudWatch only); the count is kept in `crl_failures`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from cryptography import x509

REASONS: dict[str, x509.ReasonFlags | None] = {
    "UNSPECIFIED": None,
    "KEY_COMPROMISE": x509.ReasonFlags.key_compromise,
    "CERTIFICATE_AUTHORITY_COMPROMISE": x509.ReasonFlags.ca_compromise,
    "AFFILIATION_CHANGED": x509.ReasonFlags.affiliation_changed,
    "SUPERSEDED": x509.ReasonFlags.superseded,
    "CESSATION_OF_OPERATION": x509.ReasonFlags.cessation_of_operation,
    "PRIVILEGE_WITHDRAWN": x509.ReasonFlags.privilege_withdrawn,
    "A_A_COMPROMISE": x509.ReasonFlags.aa_compromise,
}

DEFAULT_EXPIRATION_DAYS = 7


def config_of(ca: Any) -> dict[str, Any] | None:
    """The CA's CrlConfiguration when CRLs are enabled with a bucket, else None."""
    crl = (getattr(ca, "revocation_configuration", None) or {}).get("CrlConfiguration") or {}
    if crl.get("Enabled") and crl.get("S3BucketName"):
        return dict(crl)
    return None


def object_key(ca: Any) -> str:
    return f"crl/{ca.id}.crl"


def _entries(ca: Any, now: dt.datetime) -> list[x509.RevokedCertificate]:
    out = []
    for rec in list(ca.by_serial.values()):
        if rec.revoked is None or rec.failed:
            continue
        not_after = rec.extra.get("not_after")
        if not_after is not None and not_after <= now:
            continue  # expired certificates leave the CRL
        when = dt.datetime.fromtimestamp(int(rec.revoked["revocation_time"]), dt.timezone.utc)
        b = x509.RevokedCertificateBuilder().serial_number(rec.serial).revocation_date(when)
        reason = REASONS.get(str(rec.revoked.get("revocation_reason")))
        if reason is not None:
            b = b.add_extension(x509.CRLReason(reason), critical=False)
        out.append(b.build())
    return out


def build(ca: Any, now: dt.datetime | None = None) -> bytes:
    """The CA's next CRL (DER); takes the next CRL number."""
    from cryptography.hazmat.primitives import serialization

    from .acmpca import _signing

    now = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    cfg = config_of(ca) or {}
    days = cfg.get("ExpirationInDays") or DEFAULT_EXPIRATION_DAYS
    with ca.lock:
        ca.crl_number += 1
        number = ca.crl_number
        cert = ca.certificate
        h, pad = _signing(ca.certificate_authority_configuration.get("SigningAlgorithm"), ca.key)
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        except (x509.ExtensionNotFound, AttributeError):
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.issuer)
            .last_update(now)
            .next_update(now + dt.timedelta(days=int(days)))
            .add_extension(aki, critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for entry in _entries(ca, now):
            builder = builder.add_revoked_certificate(entry)
        kw = {"rsa_padding": pad} if pad is not None else {}
        crl = builder.sign(ca.key, h, **kw)
    return crl.public_bytes(serialization.Encoding.DER)


def publish(ca: Any) -> bool:
    """Writes the CA's CRL to its bucket now; False (and counted) when CRLs are off or it cannot."""
    cfg = config_of(ca)
    if cfg is None or ca.certificate is None:
        return False
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import get_canned_acl, s3_backends
    from moto.utilities.utils import get_partition

    s3 = s3_backends[ca.account_id][get_partition(ca.region_name)]
    der = build(ca)
    try:
        key = s3.put_object(cfg["S3BucketName"], object_key(ca), der)
    except MissingBucket:
        with ca.lock:
            ca.crl_failures += 1
        return False
    acl = "bucket-owner-full-control" if cfg.get("S3ObjectAcl") == "BUCKET_OWNER_FULL_CONTROL" else "public-read"
    key.set_acl(get_canned_acl(acl))
    return True


def after_revocation(ca: Any, delay_seconds: float) -> None:
    """Publish now (delay 0) or once `delay_seconds` from now; one pending publication per CA."""
    if config_of(ca) is None:
        return
    if delay_seconds <= 0:
        publish(ca)
        return
    with ca.lock:
        if ca.crl_timer is not None and ca.crl_timer.is_alive():
            return  # the pending publication will list this revocation too

        def fire() -> None:
            with ca.lock:
                ca.crl_timer = None
            publish(ca)

        ca.crl_timer = threading.Timer(delay_seconds, fire)
        ca.crl_timer.daemon = True
        ca.crl_timer.start()
