#!/usr/bin/env python3
"""One configuration of the scale-out benchmark -> one JSON line (scripts/bench-scaleout.sh).

  scaleout-collect.py --runners R --devices N --seconds S --codes "0 0 …" --stats STATS.json
                      --calls CALLS.json --akid AKID RUNNER.jsonl… -- RUNNER.err…

Reads the runners' --json summaries (issued, already present, failed), the stand-in's counters
(certificates issued; requests that arrived vs requests that reached the backend = throttled
answers) and the runners' -v logs ("AWS HTTP exchange … http_ms=": each attempt's time at the
endpoint, without the wait for a slot in the client's shaper) for latency percentiles.
"""
import argparse
import json
import re
import sys

QUOTA = 25.0
EXCHANGE = re.compile(r'AWS HTTP exchange operation=(\S+) http_ms=(\d+)')


def pct(xs: list[int], p: float) -> int:
    if not xs:
        return 0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--")
    p = argparse.ArgumentParser()
    for a in ("--runners", "--devices"):
        p.add_argument(a, type=int, required=True)
    for a in ("--seconds", "--cpu-standin", "--cpu-runners"):
        p.add_argument(a, type=float, required=True)
    for a in ("--codes", "--stats", "--calls", "--akid"):
        p.add_argument(a, required=True)
    p.add_argument("jsonl", nargs="+")
    a = p.parse_args(argv[:split])
    errs = argv[split + 1:]

    issued = present = failed = summaries = 0
    for path in a.jsonl:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                v = json.loads(line)
                if "summary" in v:
                    s = v["summary"]
                    summaries += 1
                    issued += int(s.get("issued", 0))
                    present += int(s.get("already_present", s.get("skipped", 0)) or 0)
                    failed += int(s.get("failed", 0))
    with open(a.stats) as f:
        stats = next(iter(json.load(f)["certificate_authorities"].values()))
    with open(a.calls) as f:
        calls = json.load(f)["access_keys"].get(a.akid, {}).get("operations", {})
    lat: dict[str, list[int]] = {}
    for path in errs:
        with open(path, errors="replace") as f:
            for line in f:
                m = EXCHANGE.search(line.replace('"', ""))
                if m:
                    lat.setdefault(m.group(1), []).append(int(m.group(2)))
    ddb = [x for op, xs in lat.items() if op.startswith("DynamoDB") for x in xs]
    rate = a.devices / a.seconds if a.seconds > 0 else 0.0
    out = {
        "runners": a.runners, "devices": a.devices, "seconds": round(a.seconds, 2),
        "rate": round(rate, 2), "ratio": round(rate / QUOTA, 3),
        "cpu_standin": round(a.cpu_standin, 1), "cpu_runners": round(a.cpu_runners, 1),
        "exit_codes": a.codes, "summaries": summaries,
        "issued": issued, "already_present": present, "failed": failed,
        "standin_issued": stats["IssueCertificate"]["issued"],
        "throttled_issue": calls.get("IssueCertificate", 0) - stats["IssueCertificate"]["calls"],
        "throttled_get": calls.get("GetCertificate", 0) - stats["GetCertificate"]["calls"],
        "issue_calls": calls.get("IssueCertificate", 0),
    }
    for name, xs in (("issue", lat.get("ACMPrivateCA.IssueCertificate", [])),
                     ("get", lat.get("ACMPrivateCA.GetCertificate", [])),
                     ("ddb", ddb)):
        out[f"lat_{name}"] = f"{pct(xs, 0.5)}/{pct(xs, 0.95)}/{max(xs) if xs else 0}"
        out[f"lat_{name}_n"] = len(xs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
