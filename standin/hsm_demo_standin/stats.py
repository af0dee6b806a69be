"""Per-CA counters of the ACM PCA calls that reached the backend (`GET /_standin/stats`).

Lets tests assert "exactly one IssueCertificate attempt" or "no second certificate" without
reading moto's state dump (which can answer HTTP 500 while other requests mutate it). Counted:
API calls that reached the ACM PCA backend — requests refused by the throttle or answered by an
injected fault (middleware) never get here. Cleared by `POST /moto-api/reset` (with the CAs) and
`POST /_standin/stats/reset`.

Shape: `{"certificate_authorities": {<CA ARN as sent>: {
    "IssueCertificate": {"calls", "issued", "failed", "idempotent_replays", "errors": {code: n}},
    "GetCertificate": {"calls", "errors": {code: n}}}}}` — `issued` counts calls that created a new
certificate, `failed` calls that created a new request ending in a failed state (switch
`fail_issuance`), `idempotent_replays` calls answered from the IdempotencyToken cache.
"""

from __future__ import annotations

import copy
import threading
from typing import Any


def _empty() -> dict[str, Any]:
    return {
        "IssueCertificate": {"calls": 0, "issued": 0, "failed": 0, "idempotent_replays": 0, "errors": {}},
        "GetCertificate": {"calls": 0, "errors": {}},
    }


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cas: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        with self._lock:
            self._cas = {}

    def record(self, ca_arn: Any, operation: str, outcome: str | None = None, error: str | None = None) -> None:
        """One call of `operation` for `ca_arn`: `outcome` is a counter name, `error` an error code."""
        key = ca_arn if isinstance(ca_arn, str) else repr(ca_arn)
        with self._lock:
            op = self._cas.setdefault(key, _empty())[operation]
            op["calls"] += 1
            if error is not None:
                op["errors"][error] = op["errors"].get(error, 0) + 1
            elif outcome is not None:
                op[outcome] += 1

    def snapshot(self, ca_arn: str | None = None) -> dict[str, Any]:
        with self._lock:
            if ca_arn is not None:
                cas = {ca_arn: copy.deepcopy(self._cas.get(ca_arn, _empty()))}
            else:
                cas = copy.deepcopy(self._cas)
        return {"certificate_authorities": cas}


STATS = Stats()


class Calls:
    """Every API request per access key id and operation (`GET /_standin/calls`).

    Counted as the request arrives, before throttling and injected faults, for every service
    (ACM PCA, DynamoDB, ...): "no AWS call at all" is a total of zero for the test's access key.
    Requests whose operation the middleware cannot name from the headers (query-protocol services)
    count under "(unknown)". Control and `/moto-api` requests are not counted. Cleared with the
    per-CA counters (`POST /_standin/stats/reset`, `POST /moto-api/reset`).

    Shape: `{"access_keys": {<akid or "(unsigned)">: {"total": n, "operations": {op: n}}}}`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._keys = {}

    def record(self, akid: str | None, operation: str | None) -> None:
        key = akid if akid is not None else "(unsigned)"
        op = operation if operation is not None else "(unknown)"
        with self._lock:
            ops = self._keys.setdefault(key, {})
            ops[op] = ops.get(op, 0) + 1

    def snapshot(self, akid: str | None = None) -> dict[str, Any]:
        with self._lock:
            keys = {akid: self._keys.get(akid, {})} if akid is not None else self._keys
            out = {k: {"total": sum(v.values()), "operations": dict(v)} for k, v in keys.items()}
        return {"access_keys": out}


CALLS = Calls()
