#!/usr/bin/env python3
"""Run checkov (offline) with the custom checks of infra/checkov/.

  run_checkov.py --checkov BIN TEMPLATE...     all checks (built-in + custom) must pass; skips need a comment
  run_checkov.py --checkov BIN --broken DIR    every DIR/<CHECK_ID>__<what>.yaml must FAIL <CHECK_ID>

Offline: BC_SKIP_MAPPING=TRUE, --skip-download, --framework cloudformation (no Prisma Cloud calls).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKS_DIR = HERE.parent / "checkov"
CUSTOM_IDS = ["CKV_HSM_1", "CKV_HSM_2", "CKV_HSM_3", "CKV_HSM_4"]


def run(checkov: str, targets: list[str], only_custom: bool) -> list[dict]:
    cmd = [checkov, "--skip-download", "--framework", "cloudformation", "--external-checks-dir", str(CHECKS_DIR),
           "--output", "json", "--soft-fail"]
    if only_custom:
        cmd += ["--check", ",".join(CUSTOM_IDS)]
    for t in targets:
        cmd += ["-d", t] if Path(t).is_dir() else ["-f", t]
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"error: checkov produced no JSON (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    reports = out if isinstance(out, list) else [out]
    if not reports or any(r.get("check_type") not in (None, "cloudformation") for r in reports):
        raise SystemExit(f"error: unexpected checkov output: {proc.stdout[:300]}")
    return reports


def results(reports: list[dict], kind: str) -> list[dict]:
    return [c for r in reports for c in (r.get("results") or {}).get(kind, [])]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkov", required=True)
    ap.add_argument("--broken", type=Path)
    ap.add_argument("templates", nargs="*")
    args = ap.parse_args()
    errors: list[str] = []

    if args.templates:
        reports = run(args.checkov, args.templates, only_custom=False)
        passed, failed, skipped = (results(reports, k) for k in ("passed_checks", "failed_checks", "skipped_checks"))
        for c in failed:
            errors.append(f"error: checkov {c['check_id']} ({c['check_name']}) fails on {c['file_path']} {c['resource']}")
        for c in skipped:
            reason = (c.get("check_result") or {}).get("suppress_comment") or ""
            if len(reason.strip()) < 20 or "No comment provided" in reason:
                errors.append(f"error: checkov skip of {c['check_id']} on {c['resource']} has no justification")
            else:
                print(f"checkov: skipped {c['check_id']} on {c['resource']}: {reason.strip()}")
        custom_ran = sorted({c["check_id"] for c in passed if c["check_id"] in CUSTOM_IDS})
        if custom_ran != CUSTOM_IDS:
            errors.append(f"error: custom checks did not all run on the templates (ran: {custom_ran})")
        print(f"checkov: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped (justified) "
              f"on {', '.join(args.templates)}; custom checks run: {', '.join(custom_ran)}")

    if args.broken:
        files = sorted(args.broken.glob("*.yaml"))
        reports = run(args.checkov, [str(args.broken)], only_custom=True)
        failed = results(reports, "failed_checks")
        covered = set()
        for f in files:
            expected = f.name.split("__", 1)[0]
            hits = [c for c in failed if c["check_id"] == expected and Path(c["file_path"]).name == f.name]
            if hits:
                covered.add(expected)
                print(f"checkov: {f.name}: rejected by {expected} as it should ({hits[0]['check_name']})")
            else:
                errors.append(f"error: broken template {f} PASSES checkov {expected} (must be rejected)")
        for missing in sorted(set(CUSTOM_IDS) - covered):
            errors.append(f"error: custom check {missing} has no broken template in {args.broken}")

    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
