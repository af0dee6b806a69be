"""S3 bucket policies with conditions, evaluated as IAM does.

Stock moto (5.2.5) knows only the StringEquals condition operator and takes every other one (Bool,
ArnLike, ...) as holding, and it passes no condition values for object requests. The usual
`DenyInsecureTransport` statement (Deny s3:* when aws:SecureTransport is false, which
infra/templates/hierarchy.yaml puts on its buckets) therefore denied every GetObject/PutObject and
every object of a DeleteObjects: a deployed stack's CRL could not be read back.

Here the conditions are evaluated against the request's context: aws:SecureTransport "true" (the
stand-in's plain HTTP on loopback stands in for AWS's HTTPS endpoints, which the SDKs use). A key
the context lacks fails its condition unless the operator ends in IfExists, as in IAM; an operator
not implemented here makes the statement not apply. A statement whose Condition does not hold does
not apply; the others are evaluated by moto as before.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

# The condition context of every S3 object request the stand-in serves.
REQUEST_CONTEXT = {"aws:SecureTransport": "true"}


def condition_holds(condition: dict[str, dict[str, Any]]) -> bool:
    """IAM's evaluation of a Condition block (every operator and key must hold) for REQUEST_CONTEXT."""
    context = {k.lower(): v for k, v in REQUEST_CONTEXT.items()}
    for op, pairs in condition.items():
        base = op.removesuffix("IfExists")
        for key, expected in pairs.items():
            values = [str(e) for e in (expected if isinstance(expected, list) else [expected])]
            actual = context.get(key.lower())
            if actual is None:
                if not op.endswith("IfExists"):
                    return False
                continue
            if base == "Bool":
                ok = actual.lower() in [v.lower() for v in values]
            elif base in ("StringEquals", "ArnEquals"):
                ok = actual in values
            elif base in ("StringNotEquals", "ArnNotEquals"):
                ok = actual not in values
            elif base in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(actual, v) for v in values)
            else:
                return False
            if not ok:
                return False
    return True


def applicable_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of `policy` whose Condition holds for REQUEST_CONTEXT, without the Condition."""
    stmts = policy.get("Statement", [])
    if isinstance(stmts, dict):
        stmts = [stmts]
    return [{k: v for k, v in s.items() if k != "Condition"} for s in stmts
            if condition_holds(s.get("Condition") or {})]


def install() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy)
        stmts = applicable_statements(policy)
        if not stmts:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**policy, "Statement": stmts})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission
