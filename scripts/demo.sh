#!/usr/bin/env bash
# The spec's key-lifecycle flow on a project-local SoftHSM2 token (never the system token dir).
#   BIN   hsm-demo binary (default: target/debug/hsm-demo)
#   ROOT  project root (default: this script's parent)
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/debug/hsm-demo}
TOKENS=$ROOT/.tokens
RUN=$ROOT/.run
WORK=$RUN/demo
LABEL=${DEMO_TOKEN_LABEL:-demo}

[ -x "$BIN" ] || { echo "error: $BIN not built (run: cargo build)" >&2; exit 1; }
command -v softhsm2-util >/dev/null || { echo "error: softhsm2-util missing (run: make deps-apt)" >&2; exit 1; }

# A fresh project-local token store and config; the demo token is re-initialised on every run.
rm -rf "$TOKENS" "$WORK"
mkdir -p "$TOKENS" "$WORK"
export SOFTHSM2_CONF=$RUN/softhsm2.conf
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
  "$TOKENS" > "$SOFTHSM2_CONF"
unset HSM_DEMO_TOKEN HSM_DEMO_MODULE
export HSM_DEMO_PIN=123456   # demo PIN: the environment, never a command-line flag

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s$ %s%s\n' "$B" "$*" "$N"; }
# Show arguments as a user would type them (quoted when they contain spaces).
shown() { local a out=""; for a in "$@"; do case $a in *[[:space:]]*|'') out+=" \"$a\"";; *) out+=" $a";; esac; done; printf '%s' "${out# }"; }
hsm() { step "hsm-demo $(shown "$@")"; "$BIN" "$@"; }

cd "$WORK"
step "softhsm2-util --init-token --free --label $LABEL --so-pin 12345678 --pin \$HSM_DEMO_PIN"
softhsm2-util --init-token --free --label "$LABEL" --so-pin 12345678 --pin "$HSM_DEMO_PIN" | sed 's/^/  /'

hsm list-slots
hsm key-ceremony
hsm generate-key --label service-key

step 'SIG=$(hsm-demo sign --label service-key --data "hello cert world" | grep "Signature:" | awk '"'"'{print $2}'"'"')'
SIG=$("$BIN" sign --label service-key --data "hello cert world" | grep "Signature:" | awk '{print $2}')
echo "SIG=$SIG"

hsm verify --label service-key --data "hello cert world" --sig "$SIG"

step "hsm-demo verify --label service-key --data \"tampered data\" --sig \$SIG   # must fail"
if "$BIN" verify --label service-key --data "tampered data" --sig "$SIG"; then
  echo "demo FAILED: tampered data verified" >&2
  exit 1
fi
echo "(failed as expected: the signature does not cover the tampered data)"

# Interop: the public key and signature as openssl sees them.
hsm export-pubkey --label service-key --out service-key.pem
printf '%s' "hello cert world" > msg.txt
hsm sign --label service-key --in msg.txt --format raw --out msg.sig
step "openssl dgst -sha256 -verify service-key.pem -signature msg.sig msg.txt"
openssl dgst -sha256 -verify service-key.pem -signature msg.sig msg.txt

printf '\ndemo OK (token store: %s, files: %s)\n' "$TOKENS" "$WORK"

# Optional AWS part (infra/): the stack's outputs (.run/infra-outputs.json) feed `hsm-demo provision`
# of one device certificate, its key on a second token (this one holds the ceremony's root key);
# skipped with a note when it cannot run.
ROOT=$ROOT BIN=$BIN bash "$ROOT/infra/deploy/demo_aws.sh"
