#!/usr/bin/env python3
"""Renders the bench-fleet blocks from the run's results (JSON lines) and writes them in place.

  report-fleet.py RESULTS --bin BIN --py PY --load-start L --load-end L --n-small N --n-large N
                  --n-renew N --issue-tps T --get-tps T --bench-out docs/benchmarks.md
                  --schema-out docs/registry-schema.md

docs/benchmarks.md gets the measured table (every row with its target and verdict, the format
scripts/bench/check.py reads); docs/registry-schema.md gets the figures at 1,000,000 devices,
extrapolated from the measured ones with the arithmetic written out. Each block replaces the one
between its `bench-fleet` markers (appended when there is none). Only the benchmarks present in
RESULTS appear.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess

MILLION = 1_000_000
# On-demand read request unit price, us-east-1 (the figure docs/registry-schema.md uses; verify).
RRU_USD_PER_MILLION = 0.125
# Assumed DynamoDB latency of one 1 MB Scan page (not measured here: the stand-in is not DynamoDB).
PAGE_MS = (10, 30)


def sh(cmd: str) -> str:
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
        return out.splitlines()[0] if out else "?"
    except Exception:
        return "?"


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def dur(s: float) -> str:
    if s >= 2 * 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.0f} min"
    return f"{s:.1f} s"


def replace_block(path: str, block: str) -> None:
    text = open(path).read() if os.path.exists(path) else ""
    pat = re.compile(r"<!-- bench-fleet:start -->.*?<!-- bench-fleet:end -->", re.S)
    text = pat.sub(lambda m: block, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results")
    for x in ("--bin", "--py", "--load-start", "--load-end", "--bench-out", "--schema-out"):
        p.add_argument(x, required=True)
    for x in ("--n-small", "--n-large", "--n-renew"):
        p.add_argument(x, type=int, required=True)
    for x in ("--issue-tps", "--get-tps"):
        p.add_argument(x, type=float, required=True)
    p.add_argument("--nice", default="0", help="the niceness the benchmark ran at")
    p.add_argument("--when", help="when it was measured (default: now)")
    a = p.parse_args()
    r: dict[str, dict] = {}
    with open(a.results) as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                r[d["bench"]] = d

    def num(bench: str, key: str, default: float = 0.0) -> float:
        try:
            return float(r[bench][key])
        except (KeyError, ValueError, TypeError):
            return default

    quota = a.issue_tps
    when = a.when or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def cpu(bench: str) -> str:
        """hsm-demo's own CPU time and its share of the wall time, when recorded."""
        c, t = num(bench, "cpu_s", -1), num(bench, "seconds")
        return f"hsm-demo CPU {c:.1f} s = {100 * c / t:.0f}% of the wall time" if c >= 0 and t else ""
    out: list[str] = []
    w = out.append
    w("<!-- bench-fleet:start -->")
    w("## Fleets: device CSRs, plan, expiry inventory, renewal (`make bench-fleet`)")
    w("")
    w(f"Measured {when} by `scripts/bench-fleet.sh`: release build, one local AWS stand-in for the run")
    w("(moto + `standin/`, on a free port), a registry table of its own for every configuration. Quotas are")
    w(f"the stand-in's throttling switch (IssueCertificate {quota:g} TPS, GetCertificate {a.get_tps:g} TPS) and")
    w(f"hsm-demo runs with `--issue-tps {quota:g} --get-tps {a.get_tps:g}`. One measurement each, on a shared")
    w(f"2-CPU machine (load average {a.load_start} at the start), every process of the run (stand-in and")
    w(f"hsm-demo) at niceness {a.nice}. \"hsm-demo CPU\" = user + system time of the hsm-demo process")
    w("(`/usr/bin/time -v`): the rest of its wall time it waited — on the stand-in, which shares the CPUs.")
    w("")
    w("| # | what | hsm-demo | baseline / quota | ratio | target | met |")
    w("|---|---|---|---|---|---|---|")

    def rate_row(bench: str, n: int, label: str) -> None:
        s = num(bench, "seconds")
        done = int(num(bench, "issued"))
        rate = done / s if s else 0
        failed, thr = int(num(bench, "failed")), int(num(bench, "throttled"))
        ok = rate >= 0.95 * quota and failed == 0 and done == n and int(num(bench, "exit", 1)) == 0
        c = cpu(bench)
        w(f"| {label} | {done} of {n} issued in {s:.1f} s = {rate:.2f} certificates/s; {failed} failed "
          f"({thr} by throttling); the stand-in throttled {int(num(bench, 'absorbed'))} calls, retried"
          f"{'; ' + c if c else ''} "
          f"| {quota:g} TPS quota | **{rate / quota:.3f}×** | ≥ 0.95×, every device issued | {yes(ok)} |")

    for size, n in (("small", a.n_small), ("large", a.n_large)):
        if f"csr-{size}" in r:
            rate_row(f"csr-{size}", n, f"1 | CSR mode (`provision --manifest`, `csr` column, no PKCS#11 module), "
                     f"{n} devices, stand-in throttled")
    if "csr-small" in r and "csr-large" in r:
        small, large = num("csr-small", "rss_kib") / 1024, num("csr-large", "rss_kib") / 1024
        growth = large / small if small else 0
        ok = small <= 64 and large <= 64 and growth <= 1.10 and num("csr-small", "failed") == 0 \
            and num("csr-large", "failed") == 0
        w(f"| 1 | peak RSS of the whole `hsm-demo` process in CSR mode (`/usr/bin/time -v`): {a.n_small} vs "
          f"{a.n_large} devices | {small:.1f} MiB → {large:.1f} MiB | 64 MiB; the {a.n_small}-device run "
          f"| **{growth:.2f}×** growth | ≤ 64 MiB, flat (≤ 1.10×) | {yes(ok)} |")
    if "plan" in r:
        s = num("plan", "seconds")
        ok = s <= 5 and int(num("plan", "plan_csrs")) == a.n_large
        w(f"| 2 | `provision --manifest M --plan` over {a.n_large} CSRs (none issued yet) | {s:.2f} s "
          f"({cpu('plan') + '; ' if cpu('plan') else ''}RSS {num('plan', 'rss_kib') / 1024:.1f} MiB; plan: {int(num('plan', 'plan_to_issue'))} to issue, "
          f"{int(num('plan', 'plan_csrs'))} CSRs, {int(num('plan', 'plan_hsm_keys_to_create'))} HSM keys, "
          f"{num('plan', 'plan_estimated_seconds'):.0f} s, ${num('plan', 'plan_estimated_cost_usd'):,.2f}) "
          f"| 5 s | **{s / 5:.2f}×** the limit | ≤ 5 s | {yes(ok)} |")
    for size in ("small", "large"):
        b = f"expiring-{size}"
        if b not in r:
            continue
        n = int(num(b, "devices"))
        w(f"| 3 | `pca expiring --within 31d` over {n} registry devices (one paginated Scan) "
          f"| {num(b, 'seconds'):.1f} s, {int(num(b, 'listed'))} listed, {int(num(b, 'calls_Scan'))} Scan pages, "
          f"RSS {num(b, 'rss_kib') / 1024:.1f} MiB{'; ' + cpu(b) if cpu(b) else ''} | read capacity on DynamoDB, computed: {int(num(b, 'items'))} items, "
          f"{num(b, 'bytes') / 1e6:.1f} MB → {num(b, 'rru'):,.0f} RRU eventually consistent "
          f"(${num(b, 'rru') * RRU_USD_PER_MILLION / MILLION:.6f}) | — | — | no target |")
    if "renew" in r:
        rate_row("renew", a.n_renew, f"4 | `renew --all --within 31d` of {a.n_renew} devices (HSM keys, rotated), "
                 "stand-in throttled")
    w("")
    if "csr-small" in r:
        w("**1.** Rate = devices issued / wall time of the whole `provision` process (start-up, manifest and CSR")
        w("validation, the last device's GetCertificate included). No PKCS#11 module can be in the process:")
        w("`HSM_DEMO_MODULE` names a file that does not exist and no PIN or token is set, so the RSS is all")
        w("hsm-demo's (AWS SDK, runtime, pipeline, the manifest read as a stream). The CSRs are EC P-256,")
        w("made in one Python process (`scripts/bench/make-fleet-csrs.py`); one certificate per run is")
        w("checked with `openssl verify` and its public key compared with its CSR's.")
    if "plan" in r:
        w("")
        w("**2.** Wall time of the whole process: every CSR parsed and verified (signature, key, subject),")
        w("the registry read for every device, the CA described; nothing written.")
    if "expiring-large" in r:
        b = "expiring-large"
        w("")
        w("**3.** hsm-demo does not request ConsumedCapacity and the stand-in would not compute it")
        w("faithfully, so the read capacity is computed from the table itself (`scripts/bench/ddb-read-cost.py`):")
        w("every item read back, its size by DynamoDB's rules (attribute names + values), Scan pages of 1 MB,")
        w("each page's size rounded up to 4 KB, 0.5 RRU per 4 KB (the Scan is eventually consistent). A Scan")
        w("is charged for every item it reads, before the `sk = CURRENT` filter. The stand-in's own page")
        w(f"count (per-access-key call counters) was {int(num(b, 'calls_Scan'))}, the computed one "
          f"{int(num(b, 'pages'))}. The time is the stand-in's (moto evaluates each page in Python),")
        w("not DynamoDB's; the figures at 1,000,000 devices are in `docs/registry-schema.md`.")
    if "renew" in r:
        w("")
        w("**4.** The registry was seeded by `provision --manifest` (SoftHSM2 keys, no throttling), then")
        w("`renew --all --within 31d --min-interval 0s` (every 30-day certificate is due; the default")
        w("min-interval, a third of the lifetime, would hold back certificates recorded a minute earlier)")
        w("renewed each device as generation 1 with a new HSM key pair. Rate = devices renewed / wall time")
        w(f"of the whole `renew` process, its registry Scan included; IssueCertificate calls: "
          f"{int(num('renew', 'calls_IssueCertificate'))}.")
        if "renew-seed" in r and num("renew-seed", "seconds"):
            ss = num("renew-seed", "seconds")
            w(f"For scale, the seeding `provision --manifest` of the same {a.n_renew} devices (HSM keys, no "
              f"throttling anywhere, `--issue-tps 1000`) ran at {num('renew-seed', 'issued') / ss:.1f} devices/s "
              f"({ss:.1f} s) in the same run: the ceiling of this machine and stand-in at that moment.")
    ver = {
        "hsm-demo": sh(f"'{a.bin}' --version"),
        "rustc": sh("rustc --version"),
        "SoftHSM": sh("dpkg-query -W -f='${Version}' softhsm2"),
        "moto": sh(f"'{a.py}' -c 'import moto; print(moto.__version__)'"),
        "cryptography": sh(f"'{a.py}' -c 'import cryptography; print(cryptography.__version__)'"),
    }
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
    w("")
    w(f"Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; load average "
      f"{a.load_start} at the start, {a.load_end} at the end.")
    w("Versions: " + "; ".join(f"{k} {v}" for k, v in ver.items()) + ".")
    w("<!-- bench-fleet:end -->")
    replace_block(a.bench_out, "\n".join(out))

    # --- docs/registry-schema.md: the figures at 1,000,000 devices ------------------------------------
    if "expiring-large" not in r:
        return
    s: list[str] = []
    v = s.append
    b, bs = "expiring-large", "expiring-small"
    n = int(num(b, "devices"))
    scale = MILLION / n
    byts, rru, pages, secs = num(b, "bytes"), num(b, "rru"), num(b, "pages"), num(b, "seconds")
    kinds = {}
    for part in str(r[b].get("bytes_by_kind", "")).split(","):
        if part.count(":") == 2:
            k, kb, kc = part.split(":")
            kinds[k] = (int(kb), int(kc))
    v("<!-- bench-fleet:start -->")
    v("### Measured by `make bench-fleet`, extrapolated to 1,000,000 devices")
    v("")
    v(f"Measured {when} (`scripts/bench-fleet.sh`, the table in docs/benchmarks.md): {n} devices provisioned")
    v("through the tool in CSR mode (generation 0), then `pca expiring --within 31d` over them.")
    v("")
    per_dev = byts / n
    v(f"- **Bytes.** The table holds {int(num(b, 'items'))} items, {byts:,.0f} bytes by DynamoDB's item-size rules "
      f"= {per_dev:,.0f} bytes per device"
      + (": " + ", ".join(f"{k} {kb / max(kc, 1):,.0f} B × {kc}" for k, (kb, kc) in sorted(kinds.items())) if kinds else "")
      + ".")
    rru_m = rru * scale
    pages_m = math.ceil(byts * scale / (1024 * 1024))
    v(f"- **Read capacity of one Scan at 1,000,000 devices (generation 0).** {rru:,.1f} RRU × {scale:,.0f} "
      f"= {rru_m:,.0f} RRU; × ${RRU_USD_PER_MILLION} per million RRU = **${rru_m * RRU_USD_PER_MILLION / MILLION:.3f} per "
      f"`pca expiring`** (the same Scan serves `pca metrics` and `renew --all`'s device list). "
      f"Pages: {byts:,.0f} B × {scale:,.0f} / 1 MiB = {pages_m:,.0f} Scan pages ({pages:.0f} at {n} devices).")
    per_gen = sum(kinds[k][0] for k in kinds if k != "CURRENT") / n if kinds else 0
    cur = kinds.get("CURRENT", (0, 1))[0] / n if kinds else 0
    if per_gen:
        g = 18
        year = (cur + g * per_gen) * MILLION
        year_rru = math.ceil(year / 4096) * 0.5
        v(f"- **A year in** (30-day certificates renewed at 2/3 of their lifetime, every 20 days: g ≈ 365 / 20 ≈ {g} generations per device, "
          f"each adding the items other than CURRENT, {per_gen:,.0f} B per device measured): ({cur:,.0f} + {g} × "
          f"{per_gen:,.0f}) B × 1,000,000 = {year / 1e9:,.1f} GB → {year_rru:,.0f} RRU = "
          f"**${year_rru * RRU_USD_PER_MILLION / MILLION:.2f} per Scan**; an hourly `pca metrics` scrape "
          f"≈ ${year_rru * RRU_USD_PER_MILLION / MILLION * 24 * 30:,.0f}/month.")
    if bs in r:
        ns, ss = int(num(bs, "devices")), num(bs, "seconds")
        slope = (secs - ss) / (n - ns) if n != ns else 0
        t_m = secs + slope * (MILLION - n)
        rs, rl = num(bs, "rss_kib") / 1024, num(b, "rss_kib") / 1024
        rslope = (rl - rs) / (n - ns) if n != ns else 0
        grow = math.log(secs / ss) / math.log(n / ns) if ss > 0 and secs > 0 and n != ns else 0
        ps, pl = num(bs, "calls_Scan"), num(b, "calls_Scan")
        v(f"- **Time against the stand-in**: {ss:.1f} s at {ns} devices ({ps:.0f} pages, "
          f"{ss / max(ps, 1):.2f} s per page), {secs:.1f} s at {n} ({pl:.0f} pages, {secs / max(pl, 1):.2f} s per page): "
          f"time ∝ devices^{grow:.2f}. "
          + ("A page costs the stand-in more the larger the table (moto's Scan walks the table from its first item "
             "to the ExclusiveStartKey for every page: quadratic in the table), "
             "so its time does not extrapolate: a straight line through the two points would say "
             f"{secs:.1f} + {slope * 1000:.2f} ms × {MILLION - n:,} = {dur(t_m)} at 1,000,000, a lower bound for "
             "the stand-in and no figure for DynamoDB."
             if grow > 1.1 else
             f"Linear: {secs:.1f} + {slope * 1000:.2f} ms × {MILLION - n:,} = {dur(t_m)} at 1,000,000 — the "
             "stand-in's speed, not DynamoDB's."))
        cs, cl = num(bs, "cpu_s", -1), num(b, "cpu_s", -1)
        if cs >= 0 and cl >= 0:
            cslope = (cl - cs) / (n - ns)
            v(f"- **hsm-demo's own CPU** (user + system): {cs:.2f} s at {ns}, {cl:.2f} s at {n} → {cslope * 1000:.3f} ms "
              f"per device; at 1,000,000: {cl:.2f} + {cslope * 1000:.3f} ms × {MILLION - n:,} = "
              f"**{dur(cl + cslope * (MILLION - n))}** of client CPU, whatever the server.")
        v(f"- **Time on DynamoDB (estimated, not measured)**: {pages_m:,.0f} pages read one after the other "
          f"(no parallel segments) × {PAGE_MS[0]}–{PAGE_MS[1]} ms per page = "
          f"{dur(pages_m * PAGE_MS[0] / 1000)} – {dur(pages_m * PAGE_MS[1] / 1000)} at generation 0.")
        v(f"- **Memory**: `pca expiring` keeps every CURRENT record in memory: RSS {rs:.1f} MiB at {ns}, "
          f"{rl:.1f} MiB at {n} → {rslope * 1024:.2f} KiB per device; at 1,000,000: "
          f"{rl:.1f} + {rslope * 1024:.2f} KiB × {MILLION - n:,} ≈ **{(rl + rslope * (MILLION - n)) / 1024:.2f} GiB**.")
    for bench, what in (("csr-large", "CSR-mode provisioning"), ("renew", "`renew --all`")):
        if bench in r:
            done = num(bench, "issued")
            rate = done / num(bench, "seconds") if num(bench, "seconds") else 0
            if rate:
                v(f"- **{what} of 1,000,000 devices** at the measured {rate:.2f} certificates/s "
                  f"({int(done)} in {num(bench, 'seconds'):.1f} s, {a.issue_tps:g} TPS quota): 1,000,000 / {rate:.2f} "
                  f"= {MILLION / rate:,.0f} s = **{dur(MILLION / rate)}**.")
    v("<!-- bench-fleet:end -->")
    replace_block(a.schema_out, "\n".join(s))


if __name__ == "__main__":
    main()
