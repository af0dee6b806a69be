#!/usr/bin/env bash
# The optional AWS part of `make demo` (called at the end of scripts/demo.sh): the CA hierarchy of
# infra/ in the local AWS stand-in, its outputs read from .run/infra-outputs.json, one device
# certificate provisioned with `hsm-demo provision` (key in a second SoftHSM2 token, `demo-devices`: the
# first holds the ceremony's root key), its subject,
# issuer and chain verified with openssl.
#
# Reuses the stack of an earlier `make infra-deploy` when .run/infra-outputs.json still checks out;
# otherwise deploys one (`make infra-deploy`, PCA root by default). When it cannot run (no python3,
# the stand-in cannot be started) it says so and exits 0: the HSM part of the demo stands on its own.
# A failure after the stack is up (provisioning, verification) is a real failure: exit 1.
#   ROOT (project root), BIN (hsm-demo), SOFTHSM2_CONF / HSM_DEMO_PIN / HSM_DEMO_TOKEN (the demo's token)
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${BIN:-$ROOT/target/debug/hsm-demo}
RUN=$ROOT/.run
OUTPUTS=$RUN/infra-outputs.json
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://${AWS_HOST:-127.0.0.1}:${AWS_PORT:-4566}}

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
step() { printf '\n%s$ %s%s\n' "$B" "$*" "$N"; }
skip() { printf '\nAWS part skipped: %s\n(the HSM part above is complete; run `make aws-up infra-deploy` for this part)\n' "$*"; exit 0; }

printf '\n%s== AWS part: the CA hierarchy of infra/ in the local stand-in (%s)%s\n' "$B" "$AWS_ENDPOINT_URL" "$N"
[[ "$AWS_ENDPOINT_URL" =~ ^https?://(127\.[0-9.]+|localhost)(:[0-9]+)?/?$ ]] \
    || skip "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL is not the local stand-in (the demo deploys only locally)"
command -v python3 >/dev/null || skip "python3 not found (the stand-in and the deploy scripts need it)"
command -v make >/dev/null || skip "make not found"

step "make aws-up"
make -s --no-print-directory -C "$ROOT" aws-up 2>&1 | sed 's/^/  /'; [ "${PIPESTATUS[0]}" -eq 0 ] \
    || skip "the local AWS stand-in could not be started (see above)"
PY=$ROOT/.venv/bin/python

# AWS credentials for the stand-in (any value is accepted) unless the caller has some.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}

reused=
if [ -s "$OUTPUTS" ]; then
    stack=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("stack",""))' "$OUTPUTS" 2>/dev/null || true)
    if [ -n "$stack" ] && "$PY" "$ROOT/infra/deploy/stack.py" check --stack "$stack" --out "$OUTPUTS" >/dev/null 2>&1; then
        reused=$stack
        step "# stack $stack of an earlier \`make infra-deploy\` is deployed and checks out: reusing it"
    fi
fi
if [ -z "$reused" ]; then
    step "make infra-deploy   # PCA root → intermediate (pathLen 1) → issuing CA (pathLen 0), registry table"
    make -s --no-print-directory -C "$ROOT" infra-deploy 2>&1 | sed 's/^/  /'
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: make infra-deploy failed (see above)" >&2; exit 1; }
fi

step "# the outputs the CLI consumes: $OUTPUTS"
read -r CA_ARN TABLE CHAIN < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(d["IssuingCaArn"], d["TableName"], d["IssuingCaChainFile"])' "$OUTPUTS")
printf '  IssuingCaArn:       %s\n  TableName:          %s\n  IssuingCaChainFile: %s\n' "$CA_ARN" "$TABLE" "$CHAIN"

WORK=$RUN/demo/aws
mkdir -p "$WORK"
# Device keys live on a token of their own: the demo token holds the key ceremony's root key, and
# `provision` refuses a token that holds a root CA key (design §0: a separate token for the root).
DEVICE_TOKEN=${DEMO_DEVICE_TOKEN_LABEL:-demo-devices}
step "softhsm2-util --init-token --free --label $DEVICE_TOKEN --so-pin 12345678 --pin \$HSM_DEMO_PIN"
softhsm2-util --init-token --free --label "$DEVICE_TOKEN" --so-pin 12345678 --pin "$HSM_DEMO_PIN" | sed 's/^/  /'
export HSM_DEMO_TOKEN=$DEVICE_TOKEN
DEVICE=demo-device-$(date +%Y%m%d%H%M%S)   # the demo tokens are new on every run: so is the device
step "hsm-demo doctor --ca-arn \$IssuingCaArn --table $TABLE"
"$BIN" doctor --ca-arn "$CA_ARN" --table "$TABLE" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: hsm-demo doctor found a broken link (the line marked ✗)" >&2; exit 1; }
step "hsm-demo provision --ca-arn \$IssuingCaArn --table $TABLE --device-id $DEVICE --out-dir $WORK"
"$BIN" provision --ca-arn "$CA_ARN" --table "$TABLE" --device-id "$DEVICE" --out-dir "$WORK" | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: hsm-demo provision failed" >&2; exit 1; }
CERT=$WORK/$DEVICE.cert.pem

step "openssl x509 -in $DEVICE.cert.pem -noout -subject -issuer -serial -ext extendedKeyUsage"
openssl x509 -in "$CERT" -noout -subject -issuer -serial -ext extendedKeyUsage | sed 's/^/  /'

# Trust anchor: the last certificate of the stack's chain (the root); issuing + intermediate untrusted.
awk '/-----BEGIN CERTIFICATE-----/{n++} {print > (dir "/chain-" n ".pem")}' dir="$WORK" "$CHAIN"
cat "$WORK/chain-1.pem" "$WORK/chain-2.pem" >"$WORK/untrusted.pem"
step "openssl verify -x509_strict -purpose sslclient -CAfile root.pem -untrusted issuing+intermediate.pem $DEVICE.cert.pem"
openssl x509 -in "$WORK/chain-3.pem" -noout -subject | sed 's/^/  root: /'
openssl verify -x509_strict -purpose sslclient -CAfile "$WORK/chain-3.pem" -untrusted "$WORK/untrusted.pem" "$CERT" \
    | sed 's/^/  /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "error: the device certificate does not verify up to the root" >&2; exit 1; }

step "hsm-demo pca show --device-id $DEVICE --table $TABLE"
"$BIN" pca show --device-id "$DEVICE" --table "$TABLE" | sed 's/^/  /'
printf '\nAWS part OK (stack %s stays deployed: `make infra-destroy` removes it, `make aws-down` stops the stand-in)\n' \
    "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stack"])' "$OUTPUTS")"
