#!/usr/bin/env python3
"""Counts the per-device results of `hsm-demo --json provision --manifest` (one JSON object a line).

  count-results.py FILE   ->   issued=N present=N failed=N throttled=N lines=N

A device line names its outcome in `status` (or `outcome`/`result`): issued, already-present
(any of already*/present/skipped), failed (also any line with an `error`). `throttled` counts
failed lines whose error mentions throttling (Throttling/Rate exceeded/TooManyRequests): the
benchmark's "throttling errors surfacing to the user". A summary line (no device id) is ignored.
"""
import json
import sys


def main() -> None:
    counts = {"issued": 0, "present": 0, "failed": 0, "throttled": 0, "other": 0, "lines": 0}
    with open(sys.argv[1]) as f:
        for raw in f:
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            try:
                r = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(r, dict) or not (r.get("device_id") or r.get("device")):
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
            elif status.startswith("already") or status in ("present", "skipped", "done"):
                counts["present"] += 1
            else:
                counts["other"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
