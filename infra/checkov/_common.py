"""Helpers shared by the hsm-demo custom checkov checks (CloudFormation).

checkov hands a check the resource's dict with parameter Refs already rendered to their defaults;
intrinsic functions it cannot render stay as {"Fn::...": ...} dicts. The helpers below unwrap the few
forms our templates use and treat anything they cannot resolve as non-compliant.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Iterator

# Private CA key algorithms allowed in this project (AWS also offers RSA_2048 and EC_secp521r1:
# RSA_2048 is too weak for CAs living 10+ years, secp521r1 is poorly supported by device stacks).
ALLOWED_KEY_ALGORITHMS = frozenset({"EC_prime256v1", "EC_secp384r1", "RSA_3072", "RSA_4096"})
REQUIRED_KEY_STORAGE = "FIPS_140_2_LEVEL_3_OR_HIGHER"

END_ENTITY_TEMPLATE_RE = re.compile(
    r"^arn:(aws|aws-[a-z-]+|\$\{AWS::Partition\}):acm-pca:::template/"
    r"EndEntity(ClientAuth|ServerAuth)?Certificate/V1$"
)
# condition operators that pin acm-pca:TemplateArn to exact values (no *Like, no IfExists, no Not*)
EXACT_OPERATORS = {"stringequals", "arnequals"}


def unwrap_str(value: Any) -> str | None:
    """A plain string, or the format string of a Fn::Sub; None when unresolvable."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len([k for k in value if not k.startswith("__")]) == 1:
        sub = value.get("Fn::Sub")
        if isinstance(sub, str):
            return sub
        if isinstance(sub, list) and sub and isinstance(sub[0], str):
            return sub[0]
    return None


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def branches(value: Any) -> Iterator[Any]:
    """Both branches of (nested) Fn::If, else the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        args = value["Fn::If"]
        if isinstance(args, list) and len(args) == 3:
            yield from branches(args[1])
            yield from branches(args[2])
            return
    yield value


def policy_documents(resource_type: str, conf: dict) -> Iterator[Any]:
    props = conf.get("Properties") or {}
    if resource_type in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        yield props.get("PolicyDocument")
    elif resource_type in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
        for policy in as_list(props.get("Policies") or []):
            for p in branches(policy):
                if isinstance(p, dict):
                    yield p.get("PolicyDocument")


def statements(document: Any) -> Iterator[Any]:
    for doc in branches(document):
        if not isinstance(doc, dict):
            yield doc  # unresolvable document: callers treat it as non-compliant
            continue
        for stmt in as_list(doc.get("Statement") or []):
            yield from branches(stmt)


def action_matches(pattern: Any, action: str) -> bool:
    """IAM action matching: case-insensitive, with * and ? wildcards."""
    return isinstance(pattern, str) and fnmatch.fnmatchcase(action.lower(), pattern.lower())
