"""Server-side input validation from botocore's service models, as AWS's front end does it.

For the JSON-protocol services the plugin makes faithful (ACM PCA, DynamoDB), every request's body is
checked against the operation's input shape in botocore's own model file before moto sees it:
required members (`Value null at 'x' ... Member must not be null`), string and list/map lengths
(min/max), string patterns, enums, and integer/long ranges. Violations are answered as AWS answers
them: HTTP 400 ValidationException, "N validation error(s) detected: Value 'v' at 'path' failed to
satisfy constraint: Member must ..." joined by "; ", paths in lower camel case with list elements as
`.N.member` (1-based). Nothing is hand-written: the constraints come from the model file. Patterns
in Java syntax Python cannot compile (\\p{...}, surrogate ranges) are not checked.

The AWS SDKs check only some of these (botocore: required and minimums; the Rust SDK: required), so
without this a request AWS refuses would reach moto. The model is read lazily, once per service
(tens of milliseconds), so start-up does not pay for it.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from typing import Any

# X-Amz-Target prefix -> (botocore service name, API version, error type prefix)
SERVICES = {
    "ACMPrivateCA": ("acm-pca", "2017-08-22", ""),
    "DynamoDB_20120810": ("dynamodb", "2012-08-10", "com.amazonaws.dynamodb.v20120810#"),
}

_lock = threading.Lock()
_models: dict[str, dict[str, Any]] = {}
_patterns: dict[str, re.Pattern[str] | None] = {}


def model(service: str, version: str) -> dict[str, Any]:
    m = _models.get(service)
    if m is None:
        import botocore

        path = os.path.join(os.path.dirname(botocore.__file__), "data", service, version, "service-2.json")
        if os.path.exists(path + ".gz"):
            with gzip.open(path + ".gz") as f:
                m = json.load(f)
        else:
            with open(path) as f:
                m = json.load(f)
        with _lock:
            _models[service] = m
    return m


def _pattern(p: str) -> re.Pattern[str] | None:
    if p not in _patterns:
        try:
            _patterns[p] = re.compile(p)
        except re.error:
            _patterns[p] = None  # Java-only syntax: not checked
    return _patterns[p]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check(shapes: dict[str, Any], shape_name: str, value: Any, path: str, out: list[str]) -> None:
    shape = shapes[shape_name]
    kind = shape.get("type")

    def bad(constraint: str) -> None:
        out.append(f"Value '{_show(value)}' at '{path}' failed to satisfy constraint: Member must {constraint}")

    if kind == "structure":
        if not isinstance(value, dict):
            return
        for req in shape.get("required", ()):
            if value.get(req) is None:
                out.append(
                    f"Value null at '{_join(path, req)}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in (shape.get("members") or {}).items():
            if value.get(name) is not None:
                _check(shapes, member["shape"], value[name], _join(path, name), out)
    elif kind in ("list", "map"):
        if not isinstance(value, (list, dict)):
            return
        _size(shape, len(value), bad, "length")
        if kind == "list" and isinstance(value, list):
            for i, v in enumerate(value, 1):
                if v is not None:
                    _check(shapes, shape["member"]["shape"], v, f"{path}.{i}.member", out)
        elif isinstance(value, dict):
            for k, v in value.items():
                _check(shapes, shape["key"]["shape"], k, f"{path}.{k}.key", out)
                if v is not None:
                    _check(shapes, shape["value"]["shape"], v, f"{path}.{k}.member", out)
    elif kind == "string":
        if not isinstance(value, str):
            return
        _size(shape, len(value), bad, "length")
        if "enum" in shape and value not in shape["enum"]:
            bad(f"satisfy enum value set: [{', '.join(shape['enum'])}]")
        pat = shape.get("pattern")
        if pat is not None:
            rx = _pattern(pat)
            if rx is not None and rx.fullmatch(value) is None:
                bad(f"satisfy regular expression pattern: {pat}")
    elif kind in ("integer", "long"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _size(shape, value, bad, "value")


def _size(shape: dict[str, Any], n: float, bad: Any, what: str) -> None:
    lo, hi = shape.get("min"), shape.get("max")
    if lo is not None and n < lo:
        bad(f"have {what} greater than or equal to {lo}")
    if hi is not None and n > hi:
        bad(f"have {what} less than or equal to {hi}")


def _join(path: str, name: str) -> str:
    return f"{path}.{_camel(name)}" if path else _camel(name)


def errors(target: str, body: bytes) -> tuple[str, str] | None:
    """(error type, message) when the request `target` (X-Amz-Target) with `body` breaks its
    model's constraints, else None (also for unknown operations and bodies that are not JSON:
    moto answers those itself)."""
    prefix, _, operation = target.partition(".")
    svc = SERVICES.get(prefix)
    if svc is None:
        return None
    m = model(svc[0], svc[1])
    op = m["operations"].get(operation)
    if op is None or "input" not in op:
        return None
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(params, dict):
        return None
    out: list[str] = []
    _check(m["shapes"], op["input"]["shape"], params, "", out)
    if not out:
        return None
    n = len(out)
    return svc[2] + "ValidationException", f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(out)
