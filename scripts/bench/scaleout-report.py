#!/usr/bin/env python3
"""Renders the bench-scaleout section of docs/benchmarks.md from the run's results (JSON lines of
scripts/bench/scaleout-collect.py).

  scaleout-report.py RESULTS --bin BIN --load-start L --load-end L --devices N

Prints the section, between its markers, on stdout.
"""
import argparse
import datetime
import json
import platform
import subprocess

TARGET = 0.95


def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return "?"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results")
    for a in ("--bin", "--load-start", "--load-end"):
        p.add_argument(a, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--keys", choices=("hsm", "device"), required=True)
    a = p.parse_args()
    with open(a.results) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    build = "debug" if "/debug/" in a.bin else ("release" if "/release/" in a.bin else "unknown")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    w = out.append
    w("<!-- bench-scaleout:start -->")
    w("## Scale-out: several runners on one manifest (`make bench-scaleout`)")
    w("")
    w(f"Measured {when} by `scripts/bench-scaleout.sh` with a **{build} build** of hsm-demo "
      f"(`…/{'/'.join(a.bin.split('/')[-2:])}`), on a shared 2-CPU machine (load average {a.load_start} at the start, {a.load_end} at the end).")
    w(f"One manifest of {a.devices:,} devices; for each row, that many `provision --manifest` runners started")
    if a.keys == "hsm":
        w("together on one host and one fresh SoftHSM2 token (an HSM key per device), each with the full quota as its ceiling")
    else:
        w("together on one host, every device bringing its own CSR (`KEYS=device`: no HSM key, the AWS half")
        w("alone — the HSM side of this build could not keep up with the quota), each with the full quota as its ceiling")
    w("(`--issue-tps 25 --get-tps 75`), against one local stand-in throttled at AWS's default quotas")
    w("(IssueCertificate 25/s, GetCertificate 75/s), a fresh registry table per row. Devices/s is the")
    w("manifest over the wall time from the start to the last runner's exit (start-up included); the")
    w("ratio is to the 25/s IssueCertificate quota. Throttled = answers the stand-in refused (requests that")
    w("arrived minus those that reached its backend). Latency = each attempt's time at the endpoint as the")
    w("runners saw it (connection, request, answer head; not the wait for a slot in the client's shaper),")
    w("p50 / p95 / max in ms. CPU = seconds used by the stand-in (one Python process) and by all runners")
    w("together during the row; the stand-in's share of the wall time shows how close it is to one full core.")
    w("One measurement per row, no repetitions.")
    w("")
    w("| runners | wall | devices/s | ratio to quota | throttled IssueCertificate / GetCertificate | failed | certificates at the stand-in | exit codes | latency IssueCertificate | latency GetCertificate | latency DynamoDB | CPU stand-in / runners | target | met |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = r["ratio"] >= TARGET and r["failed"] == 0 and r["standin_issued"] == r["devices"]
        w(f"| {r['runners']} | {r['seconds']:.1f} s | {r['rate']:.1f} | {r['ratio']:.3f}× | "
          f"{r['throttled_issue']} / {r['throttled_get']} | {r['failed']} | "
          f"{r['standin_issued']} of {r['devices']} | {r['exit_codes']} | {r['lat_issue']} | {r['lat_get']} | {r['lat_ddb']} | "
          f"{r['cpu_standin']:.0f} s ({r['cpu_standin'] / r['seconds']:.0%} of the wall time) / {r['cpu_runners']:.0f} s | "
          f"≥ {TARGET}× | {'yes' if ok else '**no**'} |")
    w("")
    w("`met` needs the ratio, no failed device and exactly one certificate per device at the stand-in.")
    w("")
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    w(f"Machine: {cpu}, {sh('nproc')} CPUs, {platform.system()} {platform.release()}. "
      f"Versions: {sh('rustc --version')}; {sh('softhsm2-util --version | head -1') and 'SoftHSM ' + sh('softhsm2-util --version | head -1')}.")
    w("<!-- bench-scaleout:end -->")
    print("\n".join(out))


if __name__ == "__main__":
    main()
