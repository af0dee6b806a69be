#!/usr/bin/env bash
# Scale-out benchmark: 1, 2, 3 and 5 `provision --manifest` runners started together on one host and
# one SoftHSM2 token, over one manifest of N devices, against one AWS stand-in throttled at AWS's
# default quotas (IssueCertificate 25/s, GetCertificate 75/s) — what an operator adding provisioning
# hosts to meet a deadline does. Every runner keeps the full quota as its ceiling (--issue-tps 25
# --get-tps 75); the quota is shared by their throttle feedback (design §3.4).
# Per configuration: a fresh token, a fresh registry table, the stand-in's counters reset; measured:
# wall time from the start to the last runner's exit, aggregate devices/s and its ratio to the
# quota, the throttled answers the stand-in gave (requests that arrived minus those that reached
# the backend), failed devices, certificates the stand-in issued (must be N: one per device), and
# the latency of each AWS call as the runners saw it (their -v log: p50 / p95 / max), and the CPU
# time the stand-in and the runners used (on a small machine they compete for the same cores).
# Results -> docs/benchmarks.md (only the block between the bench-scaleout markers is replaced).
#
#   BIN      hsm-demo (make bench-scaleout: the release build; a debug build works too, and the
#            report names which one ran)
#   KEYS     hsm (default): every device gets an HSM key on the runners' shared token, the operator's
#            case; device: every device brings its own CSR (a `csr` column), so no HSM work is done
#            and the run measures the AWS half alone — for a build or machine whose HSM side cannot
#            keep up with the quota (a debug build on a loaded machine makes ~9 keys/s)
#   N=600  RUNNERS="1 2 3 5"  PY (the project venv's python)  OUT=docs/benchmarks.md
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/release/hsm-demo}
PY=${PY:-$ROOT/.venv/bin/python}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
N=${N:-600} RUNNERS=${RUNNERS:-1 2 3 5} KEYS=${KEYS:-hsm}
MODULE=${HSM_DEMO_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PIN=123456
HERE=$ROOT/scripts/bench

BIN=$(realpath "$BIN")
for x in "$BIN" "$PY"; do
  [ -x "$x" ] || { echo "error: $x missing (make bench-scaleout builds and installs it)" >&2; exit 1; }
done
for c in softhsm2-util /usr/bin/time; do
  command -v $c >/dev/null || { echo "error: $c missing (make deps-apt)" >&2; exit 1; }
done

source "$HERE/standin.sh"
bench_workdir hsm-demo-scaleout
unset HSM_DEMO_TOKEN HSM_DEMO_CA_ARN HSM_DEMO_TABLE
export HSM_DEMO_MODULE=$MODULE HSM_DEMO_PIN=$PIN

# --- the stand-in: our own, on a free port, ended with this script -------------------------------
bench_standin "hsm-demo scale-out" scaleout
echo "bench-scaleout: stand-in $ENDPOINT, issuing CA $CA_ARN, work dir $WORK, binary $BIN"

control() { # PATH [JSON body] -> the answer
  "$PY" - "$ENDPOINT" "$1" "${2:-}" <<'PY'
import sys, urllib.request
body = sys.argv[3].encode() if sys.argv[3] else None
req = urllib.request.Request(sys.argv[1] + sys.argv[2], data=body, method="POST" if body else "GET")
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY
}
control /_standin/config '{"throttle_enabled": true, "throttle_tps": {"IssueCertificate": 25, "GetCertificate": 75, "RevokeCertificate": 20}}' >/dev/null

new_token() {
  local d=$WORK/tok-$1
  mkdir -p "$d/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$d/tokens" > "$d/softhsm2.conf"
  SOFTHSM2_CONF=$d/softhsm2.conf softhsm2-util --init-token --free --label "$1" --so-pin 12345678 --pin $PIN >/dev/null
  echo "$d/softhsm2.conf"
}
now() { date +%s.%N; }
cpu_seconds() { # PID -> user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

[[ $KEYS == hsm || $KEYS == device ]] || { echo "error: KEYS must be hsm or device" >&2; exit 1; }
for r in $RUNNERS; do
  name=n$r
  # A manifest of its own per row (device ids so<r>-…): the same CSR twice would be an idempotent
  # replay at the stand-in, not an issuance.
  mkdir -p "$WORK/$name"
  case $KEYS in
    hsm) python3 "$HERE/make-manifest.py" "$N" "so$r" > "$WORK/$name/fleet.csv" ;;
    device) "$PY" "$HERE/make-csr-manifest.py" "$N" "so$r" "$WORK/$name" ;;
  esac
  conf=$(new_token "$name")
  "$BIN" pca init-table --table "bench-scaleout-$name" >/dev/null
  control /_standin/stats/reset '{}' >/dev/null
  # The runners wait on one start line, so they begin together (as hosts started by one operator).
  fifo=$WORK/go-$name; mkfifo "$fifo"
  pids=()
  for i in $(seq "$r"); do
    ( read -r _ < "$fifo"
      exec /usr/bin/time -f "%e %U %S" -o "$WORK/$name-$i.time" env SOFTHSM2_CONF="$conf" HSM_DEMO_TOKEN="$name" "$BIN" -v --json provision --ca-arn "$CA_ARN" \
        --manifest "$WORK/$name/fleet.csv" --table "bench-scaleout-$name" --issue-tps 25 --get-tps 75 \
        > "$WORK/$name-$i.jsonl" 2> "$WORK/$name-$i.err" ) &
    pids+=($!)
  done
  c0=$(cpu_seconds "$STANDIN_PID")
  t0=$(now)
  for _ in $(seq "$r"); do echo go; done > "$fifo"
  codes=()
  for p in "${pids[@]}"; do rc=0; wait "$p" || rc=$?; codes+=("$rc"); done
  t1=$(now)
  c1=$(cpu_seconds "$STANDIN_PID")
  # CPU: the stand-in's (from /proc) and the runners' (user + system, /usr/bin/time), in seconds.
  cpu_runners=$(cat "$WORK/$name"-*.time | awk '{ s += $2 + $3 } END { print s }')
  control "/_standin/stats?ca_arn=$CA_ARN" > "$WORK/$name-stats.json"
  control "/_standin/calls?access_key_id=$AWS_ACCESS_KEY_ID" > "$WORK/$name-calls.json"
  line=$(python3 "$HERE/scaleout-collect.py" --runners "$r" --devices "$N" --seconds "$(awk "BEGIN { print $t1 - $t0 }")" \
    --codes "${codes[*]}" --cpu-standin "$(awk "BEGIN { print $c1 - $c0 }")" --cpu-runners "$cpu_runners" --stats "$WORK/$name-stats.json" --calls "$WORK/$name-calls.json" --akid "$AWS_ACCESS_KEY_ID" \
    "$WORK/$name"-*.jsonl -- "$WORK/$name"-*.err)
  echo "$line" >> "$RESULTS"
  echo "bench-scaleout: $r runner(s): $line"
done

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
SECTION=$(python3 "$HERE/scaleout-report.py" "$RESULTS" --bin "$BIN" --load-start "$LOAD_START" --load-end "$LOAD_END" --devices "$N" --keys "$KEYS")
python3 - "$OUT" "$SECTION" <<'PY'
import os, re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"<!-- bench-scaleout:start -->.*?<!-- bench-scaleout:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
tmp = path + ".tmp"; open(tmp, "w").write(text); os.replace(tmp, path)
PY
echo "$SECTION" | grep '^| [0-9]' || true
echo "bench-scaleout: written to $OUT"
