#!/usr/bin/env bash
# Fleet benchmarks: device-generated CSRs, the capacity plan, the expiry inventory and renewal.
# One run, one AWS stand-in started for the run (free port, bound to this script's life), a
# registry table of its own for every measured configuration:
#  1. CSR mode (`provision --manifest` whose rows carry a `csr` column; no PKCS#11 module in the
#     process: HSM_DEMO_MODULE points at a file that does not exist, no PIN, no token) for
#     N_SMALL and N_LARGE devices with the stand-in's throttling on (IssueCertificate 25 TPS,
#     GetCertificate 75 TPS): achieved rate vs the quota, peak RSS of the whole process, the
#     large run's RSS vs the small run's.
#  2. `provision --manifest M --plan` over the N_LARGE CSRs (before they are issued): wall time.
#  3. `pca expiring --within 31d` over the N_SMALL and N_LARGE devices step 1 recorded: wall time, the Scan
#     pages it sent (the stand-in's per-access-key call counters), and the read capacity a Scan of
#     that table consumes on DynamoDB, computed from its items (scripts/bench/ddb-read-cost.py;
#     hsm-demo does not request ConsumedCapacity).
#  4. `renew --all` of N_RENEW devices (HSM keys on a fresh SoftHSM2 token, provisioned first
#     without the stand-in's throttling) with the throttling on: achieved rate vs the quota.
# Results -> docs/benchmarks.md (the block between the bench-fleet markers) and the measured
# figures at 1,000,000 devices -> docs/registry-schema.md (its bench-fleet block).
#
#   BIN      release hsm-demo (a debug build works for trying the script out)
#   N_SMALL=1000  N_LARGE=10000  N_RENEW=1000   BENCHES="1 2 3 4" (3 needs 1's large run)
#   ISSUE_TPS=25  GET_TPS=75  (the stand-in's quotas and hsm-demo's --issue-tps/--get-tps)
#   PY       the project venv's python (moto, boto3, cryptography)
#   OUT      docs/benchmarks.md        SCHEMA_OUT   docs/registry-schema.md
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/release/hsm-demo}
PY=${PY:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
SCHEMA_OUT=${SCHEMA_OUT:-$ROOT/docs/registry-schema.md}
N_SMALL=${N_SMALL:-1000} N_LARGE=${N_LARGE:-10000} N_RENEW=${N_RENEW:-1000}
ISSUE_TPS=${ISSUE_TPS:-25} GET_TPS=${GET_TPS:-75}
BENCHES=${BENCHES:-1 2 3 4}
MODULE=${HSM_DEMO_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PIN=123456
HERE=$ROOT/scripts/bench

BIN=$(realpath "$BIN")
for x in "$BIN" "$PY"; do
  [ -x "$x" ] || { echo "error: $x missing (make bench-fleet builds and installs it)" >&2; exit 1; }
done
for c in softhsm2-util openssl python3 /usr/bin/time; do
  command -v $c >/dev/null || { echo "error: $c missing (make deps-apt)" >&2; exit 1; }
done
has() { [[ " $BENCHES " == *" $1 "* ]]; }
if has 3 && ! has 1; then
  echo "error: benchmark 3 reads the registry benchmark 1 writes: BENCHES must include 1" >&2; exit 1
fi

source "$HERE/standin.sh"
bench_workdir hsm-demo-bench-fleet
unset HSM_DEMO_TOKEN HSM_DEMO_CA_ARN HSM_DEMO_TABLE HSM_DEMO_PIN SOFTHSM2_CONF KRYOPTIC_CONF

# --- the stand-in: our own, on a free port, ended with this script -------------------------------
bench_standin "hsm-demo fleet bench" bench
echo "bench-fleet: stand-in $ENDPOINT, issuing CA $CA_ARN, work dir $WORK"

throttle_on() {
  switches "{\"throttle_enabled\": true, \"throttle_tps\": {\"IssueCertificate\": $ISSUE_TPS, \"GetCertificate\": $GET_TPS, \"RevokeCertificate\": 20}}"
}
throttle_off() { switches '{"throttle_enabled": false}'; }
# calls AKID: the stand-in's per-operation counters of that access key, as op=n words.
calls() {
  "$PY" - "$ENDPOINT" "$1" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"{sys.argv[1]}/_standin/calls?access_key_id={sys.argv[2]}", timeout=10) as r:
    c = json.load(r)["access_keys"].get(sys.argv[2], {"total": 0, "operations": {}})
print(" ".join([f"calls_total={c['total']}"] + [f"calls_{k}={v}" for k, v in sorted(c["operations"].items())]))
PY
}

new_token() {
  local d=$WORK/tok-$1
  mkdir -p "$d/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$d/tokens" > "$d/softhsm2.conf"
  SOFTHSM2_CONF=$d/softhsm2.conf softhsm2-util --init-token --free --label "$1" --so-pin 12345678 --pin $PIN >/dev/null
  echo "$d/softhsm2.conf"
}

now() { date +%s.%N; }
secs() { awk "BEGIN { print $2 - $1 }"; }
record() { python3 -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' "$@" >> "$RESULTS"; }
rss_of() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
# cpu_of TIMEFILE: user+system CPU seconds of the process (where its wall time went: waiting or working).
cpu_of() { awk -F': ' '/User time|System time/ { s += $2 } END { print "cpu_s=" s }' "$1"; }
# no_hsm CMD…: runs CMD with no PKCS#11 module that could be loaded and no PIN or token.
no_hsm() { env -u HSM_DEMO_PIN -u HSM_DEMO_TOKEN -u SOFTHSM2_CONF HSM_DEMO_MODULE=/nonexistent/no-pkcs11-module.so "$@"; }

# csr_run NAME DIR TABLE: CSR-mode provision of DIR/manifest.csv into TABLE, throttled, timed.
csr_run() {
  local name=$1 dir=$2 table=$3 rc=0 t0 t1
  mkdir -p "$WORK/out-$name"
  t0=$(now)
  no_hsm /usr/bin/time -v -o "$WORK/time-$name.txt" \
    "$BIN" --json provision --ca-arn "$CA_ARN" --manifest "$dir/manifest.csv" --table "$table" \
    --out-dir "$WORK/out-$name" --issue-tps "$ISSUE_TPS" --get-tps "$GET_TPS" \
    > "$WORK/$name.jsonl" 2> "$WORK/$name.err" || rc=$?
  t1=$(now)
  local rss counts certs
  rss=$(rss_of "$WORK/time-$name.txt")
  counts=$(python3 "$HERE/count-results.py" "$WORK/$name.jsonl")
  certs=$(find "$WORK/out-$name" -name '*.cert.pem' | wc -l)
  echo "bench-fleet: $name: exit $rc, $(secs "$t0" "$t1") s, RSS $rss KiB, $counts, $certs certificate files"
  [ $rc = 0 ] || echo "  (stderr tail: $(tail -2 "$WORK/$name.err" | tr '\n' ' '))"
  # One certificate checked: its chain verifies and its public key is the CSR's.
  local d; d=$(sed -n 2p "$dir/manifest.csv" | cut -d, -f1)
  if [ -f "$WORK/out-$name/$d.cert.pem" ]; then
    openssl verify -partial_chain -CAfile "$WORK/out-$name/$d.chain.pem" "$WORK/out-$name/$d.cert.pem" >/dev/null \
      || { echo "error: $name: $d.cert.pem does not verify against its chain" >&2; exit 1; }
    [ "$(openssl x509 -in "$WORK/out-$name/$d.cert.pem" -pubkey -noout)" = "$(openssl req -in "$dir/csr/$d.csr" -pubkey -noout)" ] \
      || { echo "error: $name: $d's certificate does not carry its CSR's public key" >&2; exit 1; }
  fi
  # shellcheck disable=SC2086
  record bench="$name" seconds="$(secs "$t0" "$t1")" rss_kib="$rss" exit="$rc" certs="$certs" $counts \
    "$(cpu_of "$WORK/time-$name.txt")"
}

if has 1 || has 2; then
  echo "bench-fleet: CSRs for $N_SMALL + $N_LARGE devices"
  "$PY" "$HERE/make-fleet-csrs.py" "$N_SMALL" fs "$WORK/csr-small"
  "$PY" "$HERE/make-fleet-csrs.py" "$N_LARGE" fl "$WORK/csr-large"
  "$BIN" pca init-table --table bench-fleet-small >/dev/null
  "$BIN" pca init-table --table bench-fleet-large >/dev/null
fi

# --- 2. the plan over N_LARGE CSRs (nothing issued yet: every device is to issue) ----------------
if has 2; then
  echo "bench-fleet: 2. provision --plan over $N_LARGE CSRs"
  rc=0; t0=$(now)
  no_hsm /usr/bin/time -v -o "$WORK/time-plan.txt" \
    "$BIN" --json provision --ca-arn "$CA_ARN" --manifest "$WORK/csr-large/manifest.csv" --table bench-fleet-large \
    --plan --issue-tps "$ISSUE_TPS" > "$WORK/plan.json" 2> "$WORK/plan.err" || rc=$?
  t1=$(now)
  [ $rc = 0 ] || { echo "error: --plan exited $rc: $(tail -2 "$WORK/plan.err" | tr '\n' ' ')" >&2; exit 1; }
  # shellcheck disable=SC2046
  record bench=plan seconds="$(secs "$t0" "$t1")" rss_kib="$(rss_of "$WORK/time-plan.txt")" "$(cpu_of "$WORK/time-plan.txt")" \
    $(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(" ".join(f"plan_{k}={p[k]}" for k in ("devices","to_issue","csrs","hsm_keys_to_create","estimated_seconds","estimated_cost_usd")))' "$WORK/plan.json")
  echo "bench-fleet:   $(tail -1 "$RESULTS")"
fi

# --- 1. CSR mode under the stand-in's throttling ------------------------------------------------
if has 1; then
  echo "bench-fleet: 1. CSR mode, $N_SMALL and $N_LARGE devices, stand-in throttling on (IssueCertificate $ISSUE_TPS TPS, GetCertificate $GET_TPS TPS)"
  throttle_on
  csr_run csr-small "$WORK/csr-small" bench-fleet-small
  csr_run csr-large "$WORK/csr-large" bench-fleet-large
  throttle_off
fi

# --- 3. pca expiring over the registries of benchmark 1 (N_SMALL and N_LARGE devices) -----------
# Two sizes, so that the figures at 1,000,000 devices extrapolate from a measured slope.
if has 3; then
  for size in small large; do
    n=$N_SMALL; [ $size = large ] && n=$N_LARGE
    echo "bench-fleet: 3. pca expiring --within 31d over the $n-device registry"
    rc=0; t0=$(now)
    AWS_ACCESS_KEY_ID=benchexp$size /usr/bin/time -v -o "$WORK/time-expiring-$size.txt" \
      "$BIN" --json pca expiring --within 31d --table bench-fleet-$size > "$WORK/expiring-$size.json" 2> "$WORK/expiring-$size.err" || rc=$?
    t1=$(now)
    [ $rc = 0 ] || { echo "error: pca expiring exited $rc: $(tail -2 "$WORK/expiring-$size.err" | tr '\n' ' ')" >&2; exit 1; }
    listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/expiring-$size.json")
    # shellcheck disable=SC2046
    record bench=expiring-$size devices="$n" seconds="$(secs "$t0" "$t1")" rss_kib="$(rss_of "$WORK/time-expiring-$size.txt")" \
      listed="$listed" "$(cpu_of "$WORK/time-expiring-$size.txt")" $(calls benchexp$size) \
      $("$PY" "$HERE/ddb-read-cost.py" "$ENDPOINT" bench-fleet-$size)
    echo "bench-fleet:   $(tail -1 "$RESULTS")"
  done
fi

# --- 4. renew --all under the stand-in's throttling ---------------------------------------------
if has 4; then
  echo "bench-fleet: 4. renew --all, $N_RENEW devices with HSM keys (provisioned first without throttling)"
  conf=$(new_token renew)
  python3 "$HERE/make-manifest.py" "$N_RENEW" fr > "$WORK/m-renew.csv"
  "$BIN" pca init-table --table bench-fleet-renew >/dev/null
  rc=0; t0=$(now)
  SOFTHSM2_CONF=$conf HSM_DEMO_MODULE=$MODULE HSM_DEMO_PIN=$PIN HSM_DEMO_TOKEN=renew \
    "$BIN" --json provision --ca-arn "$CA_ARN" --manifest "$WORK/m-renew.csv" --table bench-fleet-renew \
    --issue-tps 1000 --get-tps 1000 > "$WORK/renew-seed.jsonl" 2> "$WORK/renew-seed.err" || rc=$?
  t1=$(now)
  seed=$(python3 "$HERE/count-results.py" "$WORK/renew-seed.jsonl")
  echo "bench-fleet:   seeded: exit $rc, $(secs "$t0" "$t1") s, $seed"
  [ $rc = 0 ] || { echo "error: seeding the renewal registry failed: $(tail -2 "$WORK/renew-seed.err" | tr '\n' ' ')" >&2; exit 1; }
  # shellcheck disable=SC2086
  record bench=renew-seed seconds="$(secs "$t0" "$t1")" $seed
  throttle_on
  rc=0; t0=$(now)
  # --within 31d: every 30-day certificate is due; --min-interval 0s: the storm guard (a third of
  # the lifetime by default) would otherwise hold back certificates recorded a minute ago.
  SOFTHSM2_CONF=$conf HSM_DEMO_MODULE=$MODULE HSM_DEMO_PIN=$PIN HSM_DEMO_TOKEN=renew AWS_ACCESS_KEY_ID=benchrenew \
    /usr/bin/time -v -o "$WORK/time-renew.txt" \
    "$BIN" --json renew --ca-arn "$CA_ARN" --all --within 31d --min-interval 0s --table bench-fleet-renew \
    --issue-tps "$ISSUE_TPS" --get-tps "$GET_TPS" > "$WORK/renew.jsonl" 2> "$WORK/renew.err" || rc=$?
  t1=$(now)
  throttle_off
  counts=$(python3 "$HERE/count-results.py" "$WORK/renew.jsonl")
  echo "bench-fleet:   renew --all: exit $rc, $(secs "$t0" "$t1") s, $counts"
  [ $rc = 0 ] || echo "  (stderr tail: $(tail -2 "$WORK/renew.err" | tr '\n' ' '))"
  # shellcheck disable=SC2046,SC2086
  record bench=renew seconds="$(secs "$t0" "$t1")" rss_kib="$(rss_of "$WORK/time-renew.txt")" exit="$rc" $counts \
    "$(cpu_of "$WORK/time-renew.txt")" \
    $(calls benchrenew)
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$HERE/report-fleet.py" "$RESULTS" --bin "$BIN" --py "$PY" \
  --load-start "$LOAD_START" --load-end "$LOAD_END" \
  --n-small "$N_SMALL" --n-large "$N_LARGE" --n-renew "$N_RENEW" --issue-tps "$ISSUE_TPS" --get-tps "$GET_TPS" \
  --bench-out "$OUT" --schema-out "$SCHEMA_OUT" --nice "$(nice)"
grep -A30 '<!-- bench-fleet:start -->' "$OUT" | grep '^| [0-9]' || true
echo "bench-fleet: written to $OUT and $SCHEMA_OUT"
