#!/usr/bin/env python3
"""Counts the per-device results of `hsm-demo --json provision --manifest` (one JSON object a line).

  count-results.py FILE   ->   issued=N present=N failed=N throttled=N skipped=N other=N lines=N
                               absorbed=N issue_calls=N

A device line names its outcome in `status`: issued, already-present, failed (also any line with an
`error`), skipped. `throttled` counts failed lines whose error mentions throttling
(Throttling/Rate exceeded/TooManyRequests): the benchmark's "throttling errors surfacing to the
user". From the summary object (no device id): `absorbed` = throttling answers retried (sum over
operations of `throttled`), `issue_calls` = IssueCertificate calls of the run.
"""
import json
import sys


def main() -> None:
    counts = {"issued": 0, "present": 0, "failed": 0, "throttled": 0, "skipped": 0, "other": 0, "lines": 0,
              "absorbed": 0, "issue_calls": 0}
    with open(sys.argv[1]) as f:
        for raw in f:
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            try:
                r = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(r, dict):
                continue
            if not r.get("device_id"):
                summary = r.get("summary", r)
                if isinstance(summary, dict) and "issued" in summary:
                    throttled = summary.get("throttled") or {}
                    if isinstance(throttled, dict):
                        counts["absorbed"] = sum(int(v) for v in throttled.values())
                    counts["issue_calls"] = int(summary.get("issue_calls") or 0)
                continue
            counts["lines"] += 1
            status = str(r.get("status") or r.get("outcome") or r.get("result") or "").lower()
            error = r.get("error") or r.get("reason")
            if status == "failed" or (error and status not in ("issued",) and not status.startswith("already")):
                counts["failed"] += 1
                text = json.dumps(error).lower()
                if any(w in text for w in ("throttl", "rate exceeded", "toomanyrequests", "slow down")):
                    counts["throttled"] += 1
            elif status == "issued":
                counts["issued"] += 1
            elif status.startswith("already"):
                counts["present"] += 1
            elif status == "skipped":
                counts["skipped"] += 1
            else:
                counts["other"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
