"""WSGI middleware in front of moto: the control endpoint, throttling and injected faults."""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

from . import __version__, auth, source_digest, speedups_enabled, validation
from .config import SWITCHES, ConfigError, set_current_access_key
from .holds import HOLDS, Held
from .stats import CALLS, STATS

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
CONTROL_PREFIX = "/_standin"


def access_key_of(environ: dict[str, Any]) -> str | None:
    m = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else None


def operation_of(environ: dict[str, Any]) -> str | None:
    """The API operation of a JSON-protocol request (`X-Amz-Target: ACMPrivateCA.IssueCertificate`)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    return None


def _json(start_response: Callable[..., Any], status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))],
    )
    return [data]


# JSON-protocol targets whose backend app `StandinMiddleware.dispatch` may cache (X-Amz-Target prefix -> the SigV4
# service names that may sign it). Only exact, known prefixes: for these moto's routing is a pure
# function of (signing service, region, prefix) — see `_route_key`.
_FAST_TARGETS = {"DynamoDB_20120810": "dynamodb", "ACMPrivateCA": "acm-pca"}


def _route_key(environ: dict[str, Any]) -> tuple[str, str, str] | None:
    """The key that fully determines which backend app moto's DomainDispatcherApplication picks for
    this request, or None when the request is not one we route ourselves.

    moto's `get_application` for a request on path "/" with no host override parses the SigV4
    credential scope (`Credential=AKID/date/REGION/SERVICE/aws4_request`) exactly as below, builds
    a host name from (service, region) — for dynamodb also from the API version in X-Amz-Target,
    which is fixed for the "DynamoDB_20120810." prefix — and looks that host up in its module list
    and URL patterns (a listdir of moto's ~200 packages and ~500 regexes, under a global lock, on
    every request). None of that depends on anything else in the request, and the app instances it
    returns live as long as the server, so caching its answer per key changes nothing observable.
    """
    if environ.get("PATH_INFO") != "/":
        return None  # moto-api, instance metadata, S3-style paths: moto's own routing
    target = environ.get("HTTP_X_AMZ_TARGET")
    auth = environ.get("HTTP_AUTHORIZATION")
    if not target or not auth:
        return None  # unsigned requests are routed from the body: moto's own routing
    prefix = target.split(".", 1)[0]
    if prefix not in _FAST_TARGETS:
        return None
    try:
        # the same parse as moto's infer_service_region_host
        credential_scope = auth.split(",")[0].split()[1]
        _, _, region, service, _ = credential_scope.split("/")
    except (ValueError, IndexError):
        return None
    service = service.lower()
    if service != _FAST_TARGETS[prefix]:
        return None
    return (service, region, prefix)


def _validate(environ: dict[str, Any]) -> tuple[str, str] | None:
    """validation.errors for a JSON-protocol request of a validated service; the body stays readable."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if not target or target.split(".", 1)[0] not in validation.SERVICES:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return validation.errors(target, body)


class StandinMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        # route key -> moto's backend (Flask) app for it; see _route_key
        self._apps: dict[tuple[str, str, str], Callable[..., Iterable[bytes]]] = {}
        self._cache_routes = speedups_enabled()

    def dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """moto's DomainDispatcherApplication, with its answer cached for DynamoDB / ACM PCA calls,
        after the request passed its service model's constraints (validation.py)."""
        refused = _validate(environ)
        if refused is not None:
            return _json(start_response, "400 Bad Request", {"__type": refused[0], "message": refused[1]})
        get_application = getattr(self.app, "get_application", None)
        key = _route_key(environ) if get_application is not None and self._cache_routes else None
        if key is None:
            return self.app(environ, start_response)
        app = self._apps.get(key)
        if app is None:
            app = get_application(environ)
            if len(self._apps) < 256:  # regions are client-chosen strings: keep the cache bounded
                self._apps[key] = app
        return app(environ, start_response)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        auth.set_request_offset(0.0)
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response, path[len(CONTROL_PREFIX) :])
        if path.startswith("/moto-api"):
            set_current_access_key(None)
            return self.app(environ, start_response)

        akid = access_key_of(environ)
        set_current_access_key(akid)
        op = operation_of(environ)
        CALLS.record(akid, op)

        draw, cfg = SWITCHES.draw(akid)
        auth.set_request_offset(cfg["clock_offset_seconds"])
        refused = auth.refusal(environ, cfg)
        if refused is not None:
            status, headers, body = refused
            start_response(status, headers)
            return [body]
        ops = cfg["fault_operations"]
        if not ops or (op is not None and op in ops):
            p_drop = cfg["fault_drop_probability"]
            p_5xx = cfg["fault_5xx_probability"]
            if draw < p_drop:
                return self.drop(environ, start_response)
            if draw < p_drop + p_5xx:
                if int(draw * 1e9) % 2:
                    return _json(
                        start_response,
                        "503 Service Unavailable",
                        {"__type": "ServiceUnavailable", "message": "injected fault (stand-in)"},
                    )
                return _json(
                    start_response,
                    "500 Internal Server Error",
                    {"__type": "InternalFailure", "message": "injected fault (stand-in)"},
                )

        if op is not None and not SWITCHES.take_token(akid, op):
            return _json(
                start_response,
                "400 Bad Request",
                {"__type": "ThrottlingException", "message": "Rate exceeded"},
            )
        held = HOLDS.take(akid, op)
        if held is not None:
            return self.hold(held, environ, start_response)
        result = self.dispatch(environ, start_response)
        HOLDS.answered(akid, op)
        return result

    def hold(self, held: Held, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A request caught by a hold (see holds.py): wait for the test's release, then go on or drop."""
        try:
            if held.stage == "request":
                if HOLDS.wait_released(held) == "drop":
                    return self.drop(environ, start_response)
                result = self.dispatch(environ, start_response)
                HOLDS.answered(held.akid, held.operation)
                return result
            # "answer": the backend acts now; the answer waits for the release.
            captured: list[tuple[Any, ...]] = []

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
                captured.append((status, headers))
                return lambda _data: None

            body_iter = self.dispatch(environ, capture)
            try:
                body = b"".join(body_iter)
            finally:
                close = getattr(body_iter, "close", None)
                if close is not None:
                    close()
            HOLDS.answered(held.akid, held.operation)
            HOLDS.acted(held)
            if held.stage == "body":
                status, headers = captured[0]
                start_response(status, headers)
                return self.stalled_body(held, environ, body)
            if HOLDS.wait_released(held) == "drop":
                return self.drop(environ, start_response)
            status, headers = captured[0]
            start_response(status, headers)
            return [body]
        finally:
            if held.stage != "body":
                held.done.set()

    def stalled_body(self, held: Held, environ: dict[str, Any], body: bytes) -> Iterable[bytes]:
        """The answer's status line and headers go out at once (the empty first chunk), its body
        only when the hold is released ("proceed"); "drop" closes the connection mid-answer."""
        try:
            yield b""
            if HOLDS.wait_released(held) == "drop":
                self.drop(environ, lambda *_a: None)
            yield body
        finally:
            held.done.set()

    @staticmethod
    def drop(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Close the connection without an answer, like a load balancer dropping it."""
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # werkzeug's write then fails with a ConnectionError, which it treats as a dropped connection.
        raise ConnectionResetError("stand-in: injected dropped connection")

    @staticmethod
    def control(
        environ: dict[str, Any], start_response: Callable[..., Any], sub: str
    ) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if sub in ("", "/", "/info") and method == "GET":
            return _json(start_response, "200 OK", {"standin": "hsm-demo", "version": __version__, "source": source_digest(),
                                                   "speedups": speedups_enabled()})
        if sub == "/config" and method == "GET":
            return _json(start_response, "200 OK", SWITCHES.snapshot())
        if sub == "/config" and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ConfigError("body must be a JSON object")
                return _json(start_response, "200 OK", SWITCHES.update(body))
            except (ConfigError, ValueError) as e:
                return _json(start_response, "400 Bad Request", {"error": str(e)})
        if sub == "/stats" and method == "GET":
            from urllib.parse import parse_qs

            ca = parse_qs(environ.get("QUERY_STRING", "")).get("ca_arn")
            return _json(start_response, "200 OK", STATS.snapshot(ca[0] if ca else None))
        if sub == "/calls" and method == "GET":
            from urllib.parse import parse_qs

            key = parse_qs(environ.get("QUERY_STRING", "")).get("access_key_id")
            return _json(start_response, "200 OK", CALLS.snapshot(key[0] if key else None))
        if sub == "/stats/reset" and method == "POST":
            STATS.reset()
            CALLS.reset()
            return _json(start_response, "200 OK", STATS.snapshot())
        if sub in ("/hold", "/release", "/holds/reset", "/held"):
            return StandinMiddleware.control_holds(environ, start_response, sub, method)
        if sub == "/config/reset" and method == "POST":
            SWITCHES.reset()
            return _json(start_response, "200 OK", SWITCHES.snapshot())
        return _json(start_response, "404 Not Found", {"error": f"no such control endpoint: {method} {sub}"})

    @staticmethod
    def control_holds(
        environ: dict[str, Any], start_response: Callable[..., Any], sub: str, method: str
    ) -> list[bytes]:
        """`POST /hold`, `GET /held?access_key_id=…&wait=S` (long poll), `POST /release`,
        `POST /holds/reset` — see holds.py."""
        from urllib.parse import parse_qs

        try:
            if sub == "/held" and method == "GET":
                q = parse_qs(environ.get("QUERY_STRING", ""))
                akid = q.get("access_key_id", [""])[0]
                if not akid:
                    raise ConfigError("held needs ?access_key_id=")
                wait = min(float(q.get("wait", ["0"])[0]), 60.0)
                return _json(start_response, "200 OK", HOLDS.held(akid, wait))
            if sub == "/holds/reset" and method == "POST":
                HOLDS.reset()
                return _json(start_response, "200 OK", {"reset": True})
            if method == "POST" and sub in ("/hold", "/release"):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ConfigError("body must be a JSON object")
                out = HOLDS.arm(body) if sub == "/hold" else HOLDS.release(body)
                return _json(start_response, "200 OK", out)
        except (ConfigError, ValueError) as e:
            return _json(start_response, "400 Bad Request", {"error": str(e)})
        return _json(start_response, "404 Not Found", {"error": f"no such control endpoint: {method} {sub}"})
