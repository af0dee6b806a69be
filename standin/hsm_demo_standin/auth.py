"""Signature time and credential expiry, checked as AWS checks them (moto checks neither).

Two switches (scoped per access key id like the others, see config.py):
- `clock_offset_seconds`: the stand-in's clock runs this far ahead of the host's (negative:
  behind). A request whose SigV4 time (`X-Amz-Date`) is more than 5 minutes from the stand-in's
  clock (15 minutes for S3) is refused as AWS refuses it, and every answer's `Date` header is
  the stand-in's clock, so a client can tell its clock is off.
- `expired_credentials`: every request is answered as signed with expired temporary credentials.

The answers are AWS's: for the JSON services (DynamoDB, ACM PCA) HTTP 400 with
`InvalidSignatureException` ("Signature expired: … is now earlier than …") or
`ExpiredTokenException`; for S3, XML `RequestTimeTooSkewed` (403) or `ExpiredToken` (400).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from typing import Any

JSON_SKEW_SECONDS = 300
S3_SKEW_SECONDS = 900
_CHECKED_SERVICES = {"dynamodb", "acm-pca", "s3"}
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def signing_service(environ: dict[str, Any]) -> str | None:
    """The SigV4 credential scope's service (`Credential=AKID/date/region/SERVICE/aws4_request`)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        return scope.split("/")[3].lower()
    except IndexError:
        return None


def server_now(cfg: dict[str, Any]) -> float:
    return time.time() + float(cfg.get("clock_offset_seconds", 0.0))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime(_AMZ_DATE)


def refusal(environ: dict[str, Any], cfg: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes] | None:
    """(status, headers, body) of AWS's refusal of this request, or None when it passes."""
    service = signing_service(environ)
    if service not in _CHECKED_SERVICES:
        return None
    s3 = service == "s3"
    now = server_now(cfg)
    if cfg.get("expired_credentials"):
        if s3:
            return _xml("400 Bad Request", "ExpiredToken", "The provided token has expired.", now)
        return _coral("ExpiredTokenException", "The security token included in the request is expired")
    sent = environ.get("HTTP_X_AMZ_DATE")
    if not sent:
        return None
    try:
        t = datetime.strptime(sent, _AMZ_DATE).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    limit = S3_SKEW_SECONDS if s3 else JSON_SKEW_SECONDS
    if abs(t - now) <= limit:
        return None
    if s3:
        return _xml(
            "403 Forbidden",
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            now,
            extra=f"<RequestTime>{sent}</RequestTime><ServerTime>{_stamp(now)}</ServerTime>"
            f"<MaxAllowedSkewMilliseconds>{S3_SKEW_SECONDS * 1000}</MaxAllowedSkewMilliseconds>",
        )
    if t < now:
        msg = f"Signature expired: {sent} is now earlier than {_stamp(now - limit)} ({_stamp(now)} - 5 min.)"
    else:
        msg = f"Signature not yet current: {sent} is still later than {_stamp(now + limit)} ({_stamp(now)} + 5 min.)"
    return _coral("InvalidSignatureException", msg)


def _coral(code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message}).encode()
    return (
        "400 Bad Request",
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))],
        body,
    )


def _xml(status: str, code: str, message: str, now: float, extra: str = "") -> tuple[str, list[tuple[str, str]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
        f"<RequestId>standin</RequestId></Error>"
    ).encode()
    return status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body


_request = threading.local()


def set_request_offset(offset: float) -> None:
    """The clock offset of the request this thread serves (the middleware sets it first thing)."""
    _request.offset = offset


def request_clock() -> float:
    """The stand-in's clock for the request this thread serves: what its `Date` header says."""
    return time.time() + getattr(_request, "offset", 0.0)


def dated_handler(base: type) -> type:
    """`base` (werkzeug's request handler) with `Date` from [`request_clock`]: werkzeug writes
    the header itself when the answer starts, in the thread that served the request."""

    class Dated(base):  # type: ignore[misc,valid-type]
        def date_time_string(self, timestamp: float | None = None) -> str:
            return super().date_time_string(request_clock() if timestamp is None else timestamp)

    return Dated
