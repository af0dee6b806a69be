"""Deleting and restoring a private CA as AWS Private CA does (stock moto deletes an ACTIVE CA and
answers RestoreCertificateAuthority with HTTP 500).

- DeleteCertificateAuthority: an ACTIVE CA must be disabled first (InvalidStateException), as must a
  CA already DELETED; PermanentDeletionTimeInDays is 7..30 (default 30, else ValidationException).
  The CA becomes DELETED with RestorableUntil = now + that many days (DescribeCertificateAuthority
  and ListCertificateAuthorities show it) and loses its resource policy.
- RestoreCertificateAuthority: only a DELETED CA, within its restoration period; it returns to the
  status it had before deletion (DISABLED, or PENDING_CERTIFICATE if it never got a certificate).
  Past RestorableUntil the CA is gone: ResourceNotFoundException.
"""

from __future__ import annotations

import json
from typing import Any

from moto.core.utils import unix_time

from . import acmpca

DEFAULT_DAYS = 30


def _validation(value: Any, constraint: str) -> acmpca.ValidationException:
    return acmpca.ValidationException(
        f"1 validation error detected: Value '{value}' at 'permanentDeletionTimeInDays' failed to satisfy "
        f"constraint: Member must have value {constraint}"
    )


def delete(backend: Any, arn: str | None, days: Any) -> None:
    if days is None:
        days = DEFAULT_DAYS
    if not isinstance(days, int) or isinstance(days, bool):
        raise acmpca.ValidationException("PermanentDeletionTimeInDays must be an integer.")
    if days < 7:
        raise _validation(days, "greater than or equal to 7")
    if days > 30:
        raise _validation(days, "less than or equal to 30")
    ca = acmpca._ca(backend, arn)
    with ca.lock:
        if ca.status in ("ACTIVE", "DELETED"):
            raise acmpca.InvalidStateException(
                f"The certificate authority {ca.arn} is in state {ca.status}; "
                + ("disable it before deleting it." if ca.status == "ACTIVE" else "it is already deleted.")
            )
        ca.status_before_deletion = ca.status
        ca.status = "DELETED"
        ca.restorable_until = unix_time() + days * 86400
        ca.policy = None
        ca.updated_at = unix_time()


def restore(backend: Any, arn: str | None) -> None:
    ca = acmpca._ca(backend, arn)
    with ca.lock:
        if ca.status != "DELETED":
            raise acmpca.InvalidStateException(
                f"The certificate authority {ca.arn} is in state {ca.status}; only a DELETED CA can be restored."
            )
        if ca.restorable_until is not None and unix_time() > ca.restorable_until:
            raise acmpca.ResourceNotFoundException(
                f"The certificate authority {ca.arn} was permanently deleted at the end of its restoration period."
            )
        ca.status = ca.status_before_deletion or "DISABLED"
        ca.restorable_until = None
        ca.updated_at = unix_time()


def response_delete(self: Any) -> str:
    params = json.loads(self.body)
    delete(self.acmpca_backend, params.get("CertificateAuthorityArn"), params.get("PermanentDeletionTimeInDays"))
    return "{}"


def response_restore(self: Any) -> str:
    params = json.loads(self.body)
    restore(self.acmpca_backend, params.get("CertificateAuthorityArn"))
    return "{}"


def install() -> None:
    from moto.acmpca import models as m
    from moto.acmpca import responses as r

    m.ACMPCABackend.delete_certificate_authority = (  # type: ignore[method-assign]
        lambda self, certificate_authority_arn, permanent_deletion_time_in_days=None: delete(
            self, certificate_authority_arn, permanent_deletion_time_in_days
        )
    )
    r.ACMPCAResponse.delete_certificate_authority = response_delete  # type: ignore[method-assign]
    r.ACMPCAResponse.restore_certificate_authority = response_restore  # type: ignore[attr-defined]
