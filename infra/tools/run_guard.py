#!/usr/bin/env python3
"""Run the cfn-guard rules of infra/guard/ (engine: PyPI cfn-guard-rs, cfn-guard 3.0.1 inside).

  run_guard.py TEMPLATE...          every rule must PASS (or be not applicable) on every template
  run_guard.py --broken DIR         every DIR/<rule>__<what>.yaml must FAIL rule <rule>

Exit status 0 on success, 1 with one `error: …` line per problem otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

import cfn_yaml  # noqa: E402
from cfn_guard_rs.cfn_guard_rs import run_checks_rs  # noqa: E402

RULES_DIR = HERE.parent / "guard"


def rule_files() -> list[Path]:
    files = sorted(RULES_DIR.glob("*.guard"))
    if not files:
        raise SystemExit(f"error: no *.guard files in {RULES_DIR}")
    return files


def _messages(obj) -> list[str]:
    """Custom messages (<<…>>) found anywhere in a not_compliant report."""
    out: list[str] = []
    if isinstance(obj, dict):
        msg = obj.get("messages")
        if isinstance(msg, dict) and msg.get("custom_message"):
            out.append(" ".join(msg["custom_message"].split()))
        for v in obj.values():
            out.extend(_messages(v))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_messages(v))
    return out


def evaluate(template: Path) -> dict[str, tuple[str, list[str]]]:
    """{rule name: (PASS|FAIL|SKIP, messages)} over all rule files."""
    data = cfn_yaml.load(template)
    results: dict[str, tuple[str, list[str]]] = {}
    for rules in rule_files():
        raw = run_checks_rs(json.dumps(data), rules.read_text(), False)
        try:
            report = json.loads(raw)
        except json.JSONDecodeError:
            raise SystemExit(f"error: cfn-guard could not evaluate {rules.name} on {template}: {raw.strip()[:300]}")
        for entry in report.get("not_compliant", []):
            rule = entry.get("Rule", entry)
            results[rule.get("name", "?")] = ("FAIL", sorted(set(_messages(rule))))
        for name in report.get("compliant", []):
            results.setdefault(name, ("PASS", []))
        for name in report.get("not_applicable", []):
            results.setdefault(name, ("SKIP", []))
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broken", type=Path, help="directory of deliberately broken templates")
    ap.add_argument("templates", nargs="*", type=Path)
    args = ap.parse_args()
    errors: list[str] = []
    for template in args.templates:
        res = evaluate(template)
        for name, (status, msgs) in sorted(res.items()):
            if status == "FAIL":
                errors.append(f"error: cfn-guard rule {name} fails on {template}: {'; '.join(msgs) or 'no message'}")
        passed = sorted(n for n, (s, _) in res.items() if s == "PASS")
        print(f"cfn-guard: {template}: {len(passed)} rules pass ({', '.join(passed)})")
    if args.broken:
        broken = sorted(args.broken.glob("*.yaml"))
        if not broken:
            errors.append(f"error: no broken templates in {args.broken}")
        covered: set[str] = set()
        for template in broken:
            expected = template.name.split("__", 1)[0]
            res = evaluate(template)
            if expected not in res:
                errors.append(f"error: {template}: no guard rule named {expected}")
            elif res[expected][0] != "FAIL":
                errors.append(f"error: broken template {template} PASSES guard rule {expected} (must be rejected)")
            else:
                covered.add(expected)
                print(f"cfn-guard: {template.name}: rejected by {expected} as it should ({'; '.join(res[expected][1])})")
        # every rule has at least one broken template (helper rules taking parameters are not rules on their own)
        all_rules = set(evaluate(broken[0]).keys()) if broken else set()
        for missing in sorted(all_rules - covered):
            errors.append(f"error: guard rule {missing} has no broken template in {args.broken}")
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
