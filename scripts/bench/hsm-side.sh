#!/usr/bin/env bash
# HSM side of provisioning for benchmark 4: key generation + CSR signing for every device of MANIFEST
# with W workers, on the token of SOFTHSM2_CONF/HSM_DEMO_TOKEN (PIN in HSM_DEMO_PIN).
#
#   hsm-side.sh BIN MANIFEST W DIR
#
# `hsm-demo provision --manifest` has no HSM-only mode, so this is the closest hsm-demo command line:
# per device `hsm-demo generate-key` then `hsm-demo pca csr` (two processes), W such loops in parallel
# (xargs -P W). Prints `mode=cli-per-device devices=N workers=W seconds=S rate=R errors=E`.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: hsm-side.sh BIN MANIFEST W DIR" >&2; exit 2; }
BIN=$1 MANIFEST=$2 W=$3 DIR=$4
mkdir -p "$DIR"
tail -n +2 "$MANIFEST" | cut -d, -f1 > "$DIR/ids"
n=$(wc -l < "$DIR/ids")
t0=$(date +%s.%N)
export BIN DIR
xargs -P "$W" -I{} sh -c '
  "$BIN" generate-key --label "device-$1" >/dev/null 2>>"$DIR/errors" \
  && "$BIN" pca csr --label "device-$1" --cn "$1" --san-dns "$1.devices.example.org" \
       --san-uri "spiffe://example.org/device/$1" --out "$DIR/$1.csr" >/dev/null 2>>"$DIR/errors" \
  || echo "$1" >> "$DIR/failed"' sh {} < "$DIR/ids" || true
t1=$(date +%s.%N)
errors=0; [ -f "$DIR/failed" ] && errors=$(wc -l < "$DIR/failed")
awk -v n="$n" -v w="$W" -v e="$errors" -v t0="$t0" -v t1="$t1" \
  'BEGIN { s = t1 - t0; printf "mode=cli-per-device devices=%d workers=%d seconds=%.6f rate=%.1f errors=%d\n", n, w, s, (n - e) / s, e }'
