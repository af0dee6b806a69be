"""Validate stack parameters against a template the way CloudFormation does before it creates anything.

The local stand-in (moto) accepts any parameter value and ignores `Rules`; real CloudFormation
rejects them. `make infra-deploy` runs this first so a wrong parameter fails with a message that
names it, on both. Supported: unknown names, missing values, AllowedValues, MinValue/MaxValue
(Number), MinLength/MaxLength, AllowedPattern, and Rules written with Fn::And/Or/Not/Equals/Contains/
EachMemberEquals/EachMemberIn and Ref.
"""

from __future__ import annotations

import re
from typing import Any


class ParameterError(ValueError):
    """One line naming the offending parameter or rule."""


def resolve(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Return every parameter's effective value (given or default); raise ParameterError on the first problem."""
    declared: dict[str, Any] = template.get("Parameters") or {}
    for name in given:
        if name not in declared:
            raise ParameterError(f"parameter {name}: not declared by the template (known: {', '.join(declared)})")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = str(given[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise ParameterError(f"parameter {name}: no value given and no default")
        _check_one(name, spec, value)
        values[name] = value
    _check_rules(template.get("Rules") or {}, values)
    return values


def _check_one(name: str, spec: dict[str, Any], value: str) -> None:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        raise ParameterError(
            f"parameter {name}: {value!r} is not one of the allowed values ({', '.join(str(a) for a in allowed)})"
        )
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ParameterError(f"parameter {name}: {value!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise ParameterError(f"parameter {name}: {value} is below the minimum {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise ParameterError(f"parameter {name}: {value} is above the maximum {spec['MaxValue']}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise ParameterError(f"parameter {name}: shorter than {spec['MinLength']} characters")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise ParameterError(f"parameter {name}: longer than {spec['MaxLength']} characters")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        hint = spec.get("ConstraintDescription") or f"must match {pattern}"
        raise ParameterError(f"parameter {name}: {hint}")


def _eval(expr: Any, values: dict[str, str]) -> Any:
    if isinstance(expr, (str, int, float, bool)):
        return str(expr) if not isinstance(expr, bool) else expr
    if isinstance(expr, list):
        return [_eval(e, values) for e in expr]
    if not isinstance(expr, dict) or len(expr) != 1:
        raise ParameterError(f"rules: unsupported expression {expr!r}")
    (fn, args), = expr.items()
    if fn == "Ref":
        if args not in values:
            raise ParameterError(f"rules: Ref to unknown parameter {args}")
        return values[args]
    if fn == "Fn::Not":
        return not _eval(args[0], values)
    if fn == "Fn::And":
        return all(_eval(a, values) for a in args)
    if fn == "Fn::Or":
        return any(_eval(a, values) for a in args)
    if fn == "Fn::Equals":
        a, b = (_eval(x, values) for x in args)
        return a == b
    if fn == "Fn::Contains":
        haystack, needle = _eval(args[0], values), _eval(args[1], values)
        return needle in haystack
    if fn == "Fn::EachMemberEquals":
        members, v = _eval(args[0], values), _eval(args[1], values)
        return all(m == v for m in members)
    if fn == "Fn::EachMemberIn":
        members, allowed = _eval(args[0], values), _eval(args[1], values)
        return all(m in allowed for m in members)
    raise ParameterError(f"rules: unsupported function {fn}")


def _check_rules(rules: dict[str, Any], values: dict[str, str]) -> None:
    for rule_name, rule in rules.items():
        cond = rule.get("RuleCondition")
        if cond is not None and not _eval(cond, values):
            continue
        for assertion in rule.get("Assertions") or []:
            if not _eval(assertion["Assert"], values):
                desc = " ".join(str(assertion.get("AssertDescription", "assertion failed")).split())
                raise ParameterError(f"rule {rule_name}: {desc}")
