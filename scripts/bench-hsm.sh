#!/usr/bin/env bash
# HSM benchmark (issue 2), one run on one project-local SoftHSM2 token:
#  (a) `hsm-demo sign --batch` over N messages vs a plain C_Sign loop with cryptoki (examples/csign_loop.rs)
#  (b) one `hsm-demo sign` process vs one `pkcs11-tool --sign` process (wall time, hyperfine)
# Results -> docs/benchmarks.md (the section between the bench-hsm markers is replaced).
#   BIN    release hsm-demo      CSIGN  release examples/csign_loop      N  messages (default 20000)
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/release/hsm-demo}
CSIGN=${CSIGN:-$ROOT/target/release/examples/csign_loop}
N=${N:-20000}
RUNS_A=${RUNS_A:-5}
RUNS_B=${RUNS_B:-200}
WORK=$ROOT/.run/bench-hsm
OUT=${OUT:-$ROOT/docs/benchmarks.md}
MODULE=${HSM_DEMO_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

BIN=$(realpath "$BIN"); CSIGN=$(realpath "$CSIGN")
for x in "$BIN" "$CSIGN"; do [ -x "$x" ] || { echo "error: $x not built (make hsm-build-release)" >&2; exit 1; }; done
for c in softhsm2-util pkcs11-tool python3; do command -v $c >/dev/null || { echo "error: $c missing (make deps-apt)" >&2; exit 1; }; done

rm -rf "$WORK"; mkdir -p "$WORK/tokens"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' "$WORK/tokens" > "$SOFTHSM2_CONF"
unset HSM_DEMO_TOKEN
export HSM_DEMO_MODULE=$MODULE HSM_DEMO_PIN=123456
softhsm2-util --init-token --free --label bench --so-pin 12345678 --pin "$HSM_DEMO_PIN" >/dev/null
KEY_ID=b0b0
"$BIN" generate-key --label bench-key --id $KEY_ID >/dev/null
cd "$WORK"
python3 - "$N" > messages.txt <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"device-{i:06d} hello cert world")
PY
printf 'hello cert world' > msg.txt
openssl dgst -sha256 -binary -out msg.sha256 msg.txt

# Sanity: both sides sign with the same key and hsm-demo's batch signatures verify.
"$BIN" sign --id $KEY_ID --batch messages.txt > batch.sigs
[ "$(wc -l < batch.sigs)" = "$N" ] || { echo "error: batch produced $(wc -l < batch.sigs) signatures, expected $N" >&2; exit 1; }
"$BIN" verify --id $KEY_ID --data "$(head -1 messages.txt)" --sig "$(head -1 batch.sigs)" >/dev/null
"$CSIGN" "$MODULE" bench $KEY_ID messages.txt >/dev/null

have_hyperfine=0; command -v hyperfine >/dev/null && have_hyperfine=1
# mean wall seconds of a command over R runs (hyperfine if present, else a timed loop)
measure() { # name runs warmup cmd...
  local name=$1 runs=$2 warm=$3; shift 3
  if [ $have_hyperfine = 1 ]; then
    hyperfine -N --style none --warmup "$warm" --runs "$runs" --export-json "$name.json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1 \
      || { echo "error: hyperfine failed for $name" >&2; exit 1; }
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(r["mean"], r["stddev"] or 0)' "$name.json"
  else
    for _ in $(seq "$warm"); do "$@" >/dev/null; done
    local t0 t1; t0=$(date +%s.%N)
    for _ in $(seq "$runs"); do "$@" >/dev/null; done
    t1=$(date +%s.%N)
    python3 -c "print(($t1-$t0)/$runs, 0)"
  fi
}

echo "bench-hsm: (a) $N signatures: hsm-demo sign --batch vs C_Sign loop ($RUNS_A runs each)"
read -r A_HSM A_HSM_SD < <(measure batch "$RUNS_A" 1 "$BIN" sign --id $KEY_ID --batch messages.txt)
read -r A_RAW A_RAW_SD < <(measure csign "$RUNS_A" 1 "$CSIGN" "$MODULE" bench $KEY_ID messages.txt)
echo "bench-hsm: (b) one process: hsm-demo sign vs pkcs11-tool --sign ($RUNS_B runs each)"
read -r B_HSM B_HSM_SD < <(measure one-hsm "$RUNS_B" 10 "$BIN" sign --id $KEY_ID --data "hello cert world")
read -r B_P11 B_P11_SD < <(measure one-p11 "$RUNS_B" 10 pkcs11-tool --module "$MODULE" --token-label bench \
  --login --pin "$HSM_DEMO_PIN" --sign --id $KEY_ID -m ECDSA -i msg.sha256 -o p11.sig)

REPORT=$(python3 - "$N" "$A_HSM" "$A_HSM_SD" "$A_RAW" "$A_RAW_SD" "$B_HSM" "$B_HSM_SD" "$B_P11" "$B_P11_SD" "$have_hyperfine" <<'PY'
import sys, platform, subprocess, datetime, os
n=int(sys.argv[1]); ah,ahs,ar,ars,bh,bhs,bp,bps=map(float,sys.argv[2:10]); hf=sys.argv[10]=="1"
def sh(c):
    try: return subprocess.run(c,shell=True,capture_output=True,text=True).stdout.strip()
    except Exception: return "?"
cpu=sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
print(f"""<!-- bench-hsm:start -->
## HSM signing (`make bench-hsm`)

Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on one SoftHSM2 token, release builds,
{'hyperfine (mean ± sd)' if hf else 'a timed shell loop (mean)'}.

| | hsm-demo | baseline | ratio | target |
|---|---|---|---|---|
| (a) {n} messages, one process: `sign --batch` vs plain C_Sign loop (cryptoki, `examples/csign_loop.rs`) | {ah:.3f} s ± {ahs:.3f} ({n/ah:,.0f} sig/s) | {ar:.3f} s ± {ars:.3f} ({n/ar:,.0f} sig/s) | **{ar/ah:.3f}×** throughput | ≥ 0.95× |
| (b) one signature, whole process: `hsm-demo sign` vs `pkcs11-tool --sign --id` | {bh*1000:.2f} ms ± {bhs*1000:.2f} | {bp*1000:.2f} ms ± {bps*1000:.2f} | **{bh/bp:.3f}×** wall time | ≤ 0.9× |

Both sides of (a) load the module, log in once, hash every line with SHA-256 and call C_Sign
(CKM_ECDSA) on one session; hsm-demo also converts each r‖s to DER, hex-encodes it and writes one
line per signature. Side (b) includes process start, dlopen, C_Initialize, token look-up, login,
key look-up and one signature (pkcs11-tool signs a precomputed SHA-256 digest).

Machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}.
Versions: {sh('rustc --version')}; SoftHSM {sh("dpkg-query -W -f='${Version}' softhsm2")}; OpenSC pkcs11-tool {sh("dpkg-query -W -f='${Version}' opensc")}; {sh('hyperfine --version') if hf else 'no hyperfine'}.
<!-- bench-hsm:end -->""")
PY
)
mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$REPORT" <<'PY'
import sys, os, re
path, section = sys.argv[1], sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
pat = re.compile(r"<!-- bench-hsm:start -->.*?<!-- bench-hsm:end -->", re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
tmp = path + ".tmp"; open(tmp, "w").write(text); os.replace(tmp, path)
PY
echo "$REPORT" | sed -n '/^| (a)/p;/^| (b)/p'
echo "bench-hsm: written to $OUT"
