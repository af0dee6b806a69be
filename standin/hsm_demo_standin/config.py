"""Run-time switches of the stand-in (all off by default) and the per-request scope.

Switches come from environment variables at start-up and can be changed at run time with
`POST /_standin/config` (JSON). A switch set with `"access_key_id": "AKID…"` applies only to
requests signed with that access key id, so parallel tests sharing one server don't disturb
each other. `POST /moto-api/reset` (and `POST /_standin/config/reset`) restore the start-up values.
"""

from __future__ import annotations

import copy
import os
import random
import threading
import time
from typing import Any

DEFAULT_TPS = {"IssueCertificate": 25.0, "GetCertificate": 75.0, "RevokeCertificate": 20.0}


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a number") from None


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def startup_defaults() -> dict[str, Any]:
    """The switches as the environment sets them (documented in README, section AWS stand-in)."""
    tps = dict(DEFAULT_TPS)
    if os.environ.get("STANDIN_ISSUE_TPS"):
        tps["IssueCertificate"] = _env_float("STANDIN_ISSUE_TPS", 25.0)
    ops = [o.strip() for o in os.environ.get("STANDIN_FAULT_OPERATIONS", "").split(",") if o.strip()]
    seed = os.environ.get("STANDIN_FAULT_SEED")
    return {
        "idempotency_window_seconds": _env_float("STANDIN_IDEMPOTENCY_WINDOW_SECONDS", 300.0),
        "async_pending_gets": int(_env_float("STANDIN_ASYNC_PENDING_GETS", 0)),
        "throttle_enabled": _env_bool("STANDIN_THROTTLE"),
        "throttle_tps": tps,
        "fault_5xx_probability": _env_float("STANDIN_FAULT_5XX", 0.0),
        "fault_drop_probability": _env_float("STANDIN_FAULT_DROP", 0.0),
        "fault_operations": ops,
        "fault_seed": int(seed) if seed else None,
        "issue_limit_exceeded": _env_bool("STANDIN_ISSUE_LIMIT_EXCEEDED"),
        "fail_issuance": _env_float("STANDIN_FAIL_ISSUANCE", 0.0),
        "reissue_serial": _env_bool("STANDIN_REISSUE_SERIAL"),
        "crl_delay_seconds": _env_float("STANDIN_CRL_DELAY_SECONDS", 0.0),
        "transact_token_window_seconds": _env_float("STANDIN_TRANSACT_TOKEN_WINDOW_SECONDS", 600.0),
        "audit_report_interval_seconds": _env_float("STANDIN_AUDIT_REPORT_INTERVAL_SECONDS", 1800.0),
        "audit_report_pending_describes": int(_env_float("STANDIN_AUDIT_REPORT_PENDING_DESCRIBES", 1)),
        "clock_offset_seconds": _env_float("STANDIN_CLOCK_OFFSET_SECONDS", 0.0),
        "expired_credentials": _env_bool("STANDIN_EXPIRED_CREDENTIALS"),
    }


class ConfigError(ValueError):
    pass


def _validate(update: dict[str, Any]) -> dict[str, Any]:
    known = startup_defaults().keys()
    out: dict[str, Any] = {}
    for key, value in update.items():
        if key not in known:
            raise ConfigError(f"unknown switch {key!r} (known: {', '.join(sorted(known))})")
        if key in ("fault_5xx_probability", "fault_drop_probability"):
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{key} must be a number in [0, 1]")
            value = float(value)
        elif key in (
            "idempotency_window_seconds",
            "crl_delay_seconds",
            "transact_token_window_seconds",
            "audit_report_interval_seconds",
        ):
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{key} must be a number >= 0")
            value = float(value)
        elif key in ("async_pending_gets", "audit_report_pending_describes"):
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key} must be an integer >= 0")
        elif key == "throttle_enabled":
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
        elif key == "throttle_tps":
            if not isinstance(value, dict) or not all(
                isinstance(v, (int, float)) and v > 0 for v in value.values()
            ):
                raise ConfigError(f"{key} must map operation names to rates > 0")
            value = {str(k): float(v) for k, v in value.items()}
        elif key == "fault_operations":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key} must be a list of operation names")
        elif key == "clock_offset_seconds":
            # the stand-in's clock minus the host's: any sign, at most ten years either way
            if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 315_360_000:
                raise ConfigError(f"{key} must be a number of seconds (either sign, at most ten years)")
            value = float(value)
        elif key in ("issue_limit_exceeded", "reissue_serial", "expired_credentials"):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
        elif key == "fail_issuance":
            # true/false, or the probability that a new issuance ends in a failed state
            if isinstance(value, bool):
                value = 1.0 if value else 0.0
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{key} must be true, false or a probability in [0, 1]")
            value = float(value)
        elif key == "fault_seed":
            if value is not None and not isinstance(value, int):
                raise ConfigError(f"{key} must be an integer or null")
        out[key] = value
    return out


class _Bucket:
    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate  # a full bucket holds one second of the quota
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Switches:
    """All switches, global and per access key id, plus the state they drive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._global = startup_defaults()
            self._scopes: dict[str, dict[str, Any]] = {}
            self._buckets: dict[tuple[str, str], _Bucket] = {}
            self._rngs: dict[str, random.Random] = {}

    def update(self, update: dict[str, Any]) -> dict[str, Any]:
        update = dict(update)
        scope = update.pop("access_key_id", None)
        clean = _validate(update)
        with self._lock:
            if scope is None:
                self._global.update(clean)
                self._buckets = {k: v for k, v in self._buckets.items() if k[0] in self._scopes}
                self._rngs.pop("", None)
                self._rngs.pop("fail-issuance:", None)
            else:
                base = self._scopes.setdefault(str(scope), copy.deepcopy(self._global))
                base.update(clean)
                self._buckets = {k: v for k, v in self._buckets.items() if k[0] != scope}
                self._rngs.pop(str(scope), None)
                self._rngs.pop("fail-issuance:" + str(scope), None)
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"global": copy.deepcopy(self._global), "scopes": copy.deepcopy(self._scopes)}

    def _scope_key(self, akid: str | None) -> str:
        return akid if akid is not None and akid in self._scopes else ""

    def get(self, akid: str | None = None) -> dict[str, Any]:
        if akid is None:
            akid = current_access_key()
        with self._lock:
            key = self._scope_key(akid)
            return copy.deepcopy(self._scopes[key] if key else self._global)

    def take_token(self, akid: str | None, operation: str) -> bool:
        """False when the token bucket of (scope, operation) is empty (throttle)."""
        with self._lock:
            key = self._scope_key(akid)
            cfg = self._scopes[key] if key else self._global
            if not cfg["throttle_enabled"]:
                return True
            rate = cfg["throttle_tps"].get(operation)
            if rate is None:
                return True
            bucket = self._buckets.get((key, operation))
            if bucket is None or bucket.rate != rate:
                bucket = self._buckets[(key, operation)] = _Bucket(rate)
            return bucket.take()

    def draw(self, akid: str | None) -> tuple[float, dict[str, Any]]:
        """A uniform random number for fault injection, from the scope's (seeded) generator, and the
        scope's fault switches (fault_operations, fault_drop_probability, fault_5xx_probability) and
        its clock and credential switches (clock_offset_seconds, expired_credentials)."""
        with self._lock:
            key = self._scope_key(akid)
            cfg = self._scopes[key] if key else self._global
            rng = self._rngs.get(key)
            if rng is None:
                rng = self._rngs[key] = random.Random(cfg["fault_seed"])
            # Only the switches the fault decision reads (a deep copy of the whole scope per
            # request was measurable); fault_operations is copied so callers never see a later update.
            faults = {
                "fault_operations": tuple(cfg["fault_operations"]),
                "fault_drop_probability": cfg["fault_drop_probability"],
                "fault_5xx_probability": cfg["fault_5xx_probability"],
                "clock_offset_seconds": cfg["clock_offset_seconds"],
                "expired_credentials": cfg["expired_credentials"],
            }
            return rng.random(), faults

    def issuance_fails(self, akid: str | None = None) -> bool:
        """Whether a new issuance (scope of `akid`, default the current request's) ends failed.

        Drawn from a generator of its own (seeded by `fault_seed`), so it does not shift the
        fault draws of the middleware."""
        if akid is None:
            akid = current_access_key()
        with self._lock:
            key = self._scope_key(akid)
            cfg = self._scopes[key] if key else self._global
            p = cfg["fail_issuance"]
            if p <= 0.0:
                return False
            if p >= 1.0:
                return True
            rng = self._rngs.get("fail-issuance:" + key)
            if rng is None:
                rng = self._rngs["fail-issuance:" + key] = random.Random(cfg["fault_seed"])
            return rng.random() < p


SWITCHES = Switches()

_request = threading.local()


def set_current_access_key(akid: str | None) -> None:
    _request.akid = akid


def current_access_key() -> str | None:
    return getattr(_request, "akid", None)


def install_reset_hook() -> None:
    """Make `POST /moto-api/reset` restore the switches too (moto resets its backends itself)."""
    from moto.moto_api._internal.models import MotoAPIBackend

    from .holds import HOLDS
    from .stats import CALLS, STATS

    if getattr(MotoAPIBackend.reset, "_standin", False):
        return
    original = MotoAPIBackend.reset

    def reset(self: Any) -> None:
        original(self)
        SWITCHES.reset()
        STATS.reset()
        CALLS.reset()
        HOLDS.reset()

    reset._standin = True  # type: ignore[attr-defined]
    MotoAPIBackend.reset = reset  # type: ignore[method-assign]
