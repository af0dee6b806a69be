#!/usr/bin/env bash
# Provisioning benchmarks, one run, one AWS stand-in started for the run (free port, bound
# to this script's life), a fresh SoftHSM2 token in a temp dir for every measured configuration:
#  1. N1 devices end to end: `hsm-demo provision --manifest` vs scripts/baseline-provision.sh (the shell
#     pipeline: pkcs11-tool, openssl + libp11 engine, AWS CLI) on NB devices; compared per device.
#  2. N2 devices with the stand-in's throttling switch on (IssueCertificate 25 TPS, GetCertificate 75):
#     achieved issuance rate vs the quota, failures in the --json output.
#  3. Peak RSS (/usr/bin/time -v) of `provision --manifest` for N3_SMALL and N3_LARGE devices, no throttling,
#     and of the plain cryptoki loop creating as many key pairs (the module's own share of the RSS).
#  4. HSM side: key generation + CSR signing per device with 1, 2, 4 workers — hsm-demo's worker pool
#     (examples/hsm_pool_loop.rs) and the per-device CLI — vs a plain cryptoki loop
#     (examples/keygen_csr_loop.rs) with as many threads.
# Results -> docs/benchmarks.md (only the block between the bench-provision markers is replaced).
#
#   BIN     release hsm-demo                 KLOOP   release examples/keygen_csr_loop
#   PLOOP   release examples/hsm_pool_loop
#   N1=200  NB=20  N2=1000  N3_SMALL=1000  N3_LARGE=10000  N4=300  WORKERS="1 2 4"
#   BENCHES="1 2 3 4" (a subset runs only those; the report then shows only those)
#   PY      the project venv's python (moto)  AWS_CLI  aws from .venv-awscli   OUT  docs/benchmarks.md
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/release/hsm-demo}
KLOOP=${KLOOP:-$ROOT/target/release/examples/keygen_csr_loop}
PLOOP=${PLOOP:-$ROOT/target/release/examples/hsm_pool_loop}
PY=${PY:-$ROOT/.venv/bin/python}
AWS_CLI=${AWS_CLI:-$ROOT/.venv-awscli/bin/aws}
OUT=${OUT:-$ROOT/docs/benchmarks.md}
N1=${N1:-200} NB=${NB:-20} N2=${N2:-1000} N3_SMALL=${N3_SMALL:-1000} N3_LARGE=${N3_LARGE:-10000}
N4=${N4:-300} WORKERS=${WORKERS:-1 2 4} BENCHES=${BENCHES:-1 2 3 4}
MODULE=${HSM_DEMO_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
PIN=123456
HERE=$ROOT/scripts/bench

BIN=$(realpath "$BIN"); KLOOP=$(realpath "$KLOOP"); PLOOP=$(realpath "$PLOOP")
for x in "$BIN" "$KLOOP" "$PLOOP" "$PY" "$AWS_CLI"; do
  [ -x "$x" ] || { echo "error: $x missing (make bench-provision builds and installs it)" >&2; exit 1; }
done
for c in softhsm2-util pkcs11-tool openssl python3 /usr/bin/time; do
  command -v $c >/dev/null || { echo "error: $c missing (make deps-apt)" >&2; exit 1; }
done
if [[ " $BENCHES " == *" "[123]" "* ]]; then
  "$BIN" provision --help | grep -q -- '--manifest' \
    || { echo "error: $BIN has no 'provision --manifest' (batch provisioning not built)" >&2; exit 1; }
fi

source "$HERE/standin.sh"
bench_workdir hsm-demo-bench
unset HSM_DEMO_TOKEN HSM_DEMO_CA_ARN HSM_DEMO_TABLE
export HSM_DEMO_MODULE=$MODULE HSM_DEMO_PIN=$PIN

# --- the stand-in: our own, on a free port, ended with this script -------------------------------
bench_standin "hsm-demo bench" bench
echo "bench-provision: stand-in $ENDPOINT, issuing CA $CA_ARN, work dir $WORK"

# new_token NAME: a fresh SoftHSM2 token in its own temp dir; prints the config path.
new_token() {
  local d=$WORK/tok-$1
  mkdir -p "$d/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$d/tokens" > "$d/softhsm2.conf"
  SOFTHSM2_CONF=$d/softhsm2.conf softhsm2-util --init-token --free --label "$1" --so-pin 12345678 --pin $PIN >/dev/null
  echo "$d/softhsm2.conf"
}

now() { date +%s.%N; }
record() { python3 -c 'import json,sys; print(json.dumps(dict(a.split("=",1) for a in sys.argv[1:])))' "$@" >> "$RESULTS"; }

# provision_run NAME MANIFEST TABLE [extra provision flags…]: fresh token, own table, timed, --json;
# appends name=… seconds=… rss_kib=… + the counts of the --json results to the results.
provision_run() {
  local name=$1 manifest=$2 table=$3; shift 3
  local conf; conf=$(new_token "$name")
  mkdir -p "$WORK/out-$name"
  "$BIN" pca init-table --table "$table" >/dev/null
  local t0 t1 rc=0
  t0=$(now)
  SOFTHSM2_CONF=$conf HSM_DEMO_TOKEN=$name /usr/bin/time -v -o "$WORK/time-$name.txt" \
    "$BIN" --json provision --ca-arn "$CA_ARN" --manifest "$manifest" --table "$table" \
    --out-dir "$WORK/out-$name" "$@" > "$WORK/$name.jsonl" 2> "$WORK/$name.err" || rc=$?
  t1=$(now)
  local rss; rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time-$name.txt")
  local counts; counts=$(python3 "$HERE/count-results.py" "$WORK/$name.jsonl")
  local certs; certs=$(find "$WORK/out-$name" -name '*.cert.pem' | wc -l)
  echo "bench-provision: $name: exit $rc, $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s, RSS ${rss} KiB, $counts, $certs certificate files"
  [ $rc = 0 ] || { echo "  (stderr tail: $(tail -2 "$WORK/$name.err" | tr '\n' ' '))"; }
  # shellcheck disable=SC2086
  record bench="$name" seconds="$(awk "BEGIN { print $t1 - $t0 }")" rss_kib="$rss" exit="$rc" certs="$certs" $counts
}

has() { [[ " $BENCHES " == *" $1 "* ]]; }

# --- 1. end to end: hsm-demo vs the shell pipeline ------------------------------------------------
if has 1; then
  echo "bench-provision: 1. $N1 devices with provision --manifest, $NB with the shell baseline"
  python3 "$HERE/make-manifest.py" "$N1" b1 > "$WORK/m1.csv"
  provision_run e2e "$WORK/m1.csv" bench-e2e
  python3 "$HERE/make-manifest.py" "$NB" base > "$WORK/mb.csv"
  conf=$(new_token baseline)
  "$AWS_CLI" dynamodb create-table --table-name bench-baseline --billing-mode PAY_PER_REQUEST \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE >/dev/null
  printf '%s\n' "$PIN" > "$WORK/pin"; chmod 600 "$WORK/pin"
  mkdir -p "$WORK/out-baseline"
  t0=$(now)
  SOFTHSM2_CONF=$conf CA_ARN=$CA_ARN TABLE=bench-baseline TOKEN_LABEL=baseline PIN_FILE=$WORK/pin \
    PKCS11_MODULE=$MODULE AWS_CLI=$AWS_CLI bash "$ROOT/scripts/baseline-provision.sh" "$WORK/mb.csv" "$WORK/out-baseline" \
    > "$WORK/baseline.txt"
  t1=$(now)
  done_b=$(wc -l < "$WORK/baseline.txt")
  [ "$done_b" = "$NB" ] || { echo "error: the baseline provisioned $done_b of $NB devices" >&2; exit 1; }
  # Same proof of work on both sides: the chain verifies, the key is in the token.
  for d in out-e2e/b1-000000 out-baseline/base-000000; do
    openssl verify -partial_chain -CAfile "$WORK/$d.chain.pem" "$WORK/$d.cert.pem" >/dev/null \
      || { echo "error: $d.cert.pem does not verify against its chain" >&2; exit 1; }
  done
  echo "bench-provision: baseline: $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s for $NB devices"
  record bench=baseline seconds="$(awk "BEGIN { print $t1 - $t0 }")" issued="$done_b"
fi

# --- 2. sustained issuance under the stand-in's throttling at 25 TPS ------------------------------
if has 2; then
  echo "bench-provision: 2. $N2 devices, stand-in throttling on (IssueCertificate 25 TPS, GetCertificate 75 TPS)"
  python3 "$HERE/make-manifest.py" "$N2" b2 > "$WORK/m2.csv"
  switches '{"throttle_enabled": true, "throttle_tps": {"IssueCertificate": 25, "GetCertificate": 75, "RevokeCertificate": 20}}'
  provision_run throttled "$WORK/m2.csv" bench-throttled --issue-tps 25 --get-tps 75
  switches '{"throttle_enabled": false}'
fi

# --- 3. peak RSS, small and large manifest, no throttling -----------------------------------------
if has 3; then
  echo "bench-provision: 3. peak RSS, $N3_SMALL and $N3_LARGE devices (no throttling)"
  python3 "$HERE/make-manifest.py" "$N3_SMALL" rs > "$WORK/m3s.csv"
  python3 "$HERE/make-manifest.py" "$N3_LARGE" rl > "$WORK/m3l.csv"
  provision_run rss-small "$WORK/m3s.csv" bench-rss-small
  provision_run rss-large "$WORK/m3l.csv" bench-rss-large
  # SoftHSM2 reads every object file of a token at C_Initialize: a process that reads no object at
  # all (`list-slots`) on the token a run left behind shows what merely opening it costs.
  for size in small large; do
    SOFTHSM2_CONF=$WORK/tok-rss-$size/softhsm2.conf /usr/bin/time -v -o "$WORK/time-open-$size.txt" \
      "$BIN" list-slots > /dev/null
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time-open-$size.txt")
    echo "bench-provision:   hsm-demo list-slots on the rss-$size token: RSS $rss KiB"
    record bench="open-$size" rss_kib="$rss"
  done
  # The module's share: SoftHSM2 keeps every object it has created or seen in process memory, so
  # the plain cryptoki loop (same objects, no AWS, nothing of hsm-demo) creating as many key pairs
  # on a fresh token shows how much of the RSS is the module's.
  for size in small large; do
    n=$N3_SMALL; [ $size = large ] && n=$N3_LARGE
    conf=$(new_token "rssloop-$size")
    SOFTHSM2_CONF=$conf /usr/bin/time -v -o "$WORK/time-rssloop-$size.txt" \
      "$KLOOP" "$MODULE" "rssloop-$size" "$n" 1 dev > "$WORK/rssloop-$size.txt"
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time-rssloop-$size.txt")
    echo "bench-provision:   plain loop, $n devices: RSS $rss KiB ($(cat "$WORK/rssloop-$size.txt"))"
    # shellcheck disable=SC2046
    record bench="rssloop-$size" rss_kib="$rss" $(tr ' ' '\n' < "$WORK/rssloop-$size.txt" | grep -E '^(seconds|errors|devices)=')
  done
fi

# --- 4. HSM side: keygen + CSR per device, 1/2/4 workers vs a plain cryptoki loop -----------------
# Three sides, each on a fresh token: the plain loop (cryptoki directly), hsm-demo's worker pool
# (the HSM half of provision --manifest, examples/hsm_pool_loop.rs) and the per-device CLI
# (generate-key + pca csr processes, scripts/bench/hsm-side.sh).
if has 4; then
  echo "bench-provision: 4. HSM side, $N4 devices per configuration, workers: $WORKERS"
  for w in $WORKERS; do
    conf=$(new_token "loop$w")
    line=$(SOFTHSM2_CONF=$conf "$KLOOP" "$MODULE" "loop$w" "$N4" "$w" dev)
    echo "bench-provision:   plain loop, $w thread(s): $line"
    # shellcheck disable=SC2046
    record bench="loop$w" workers="$w" $(echo "$line" | tr ' ' '\n' | grep -E '^(seconds|rate|errors|devices)=')
    conf=$(new_token "pool$w")
    line=$(SOFTHSM2_CONF=$conf "$PLOOP" "$MODULE" "pool$w" "$N4" "$w" dev)
    echo "bench-provision:   hsm-demo worker pool, $w worker(s): $line"
    # shellcheck disable=SC2046
    record bench="pool$w" workers="$w" $(echo "$line" | tr ' ' '\n' | grep -E '^(seconds|rate|errors|devices|retried)=')
    conf=$(new_token "cli$w")
    python3 "$HERE/make-manifest.py" "$N4" c$w > "$WORK/m4-$w.csv"
    SOFTHSM2_CONF=$conf HSM_DEMO_TOKEN=cli$w bash "$HERE/hsm-side.sh" "$BIN" "$WORK/m4-$w.csv" "$w" "$WORK/cli$w" > "$WORK/cli$w.txt"
    echo "bench-provision:   hsm-demo CLI per device, $w parallel: $(cat "$WORK/cli$w.txt")"
    # shellcheck disable=SC2046
    record bench="cli$w" workers="$w" $(tr ' ' '\n' < "$WORK/cli$w.txt" | grep -E '^(seconds|rate|errors|devices)=')
  done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
SECTION=$(python3 "$HERE/report.py" "$RESULTS" --bin "$BIN" --py "$PY" --aws "$AWS_CLI" \
  --load-start "$LOAD_START" --load-end "$LOAD_END" \
  --n1 "$N1" --nb "$NB" --n2 "$N2" --n3-small "$N3_SMALL" --n3-large "$N3_LARGE" --n4 "$N4")
python3 - "$OUT" "$SECTION" <<'PY'
import os, re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"<!-- bench-provision:start -->.*?<!-- bench-provision:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
tmp = path + ".tmp"; open(tmp, "w").write(text); os.replace(tmp, path)
PY
echo "$SECTION" | grep '^| [0-9]' || true
echo "bench-provision: written to $OUT"
