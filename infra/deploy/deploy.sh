#!/usr/bin/env bash
# Deploy the hsm-demo PKI stack into $AWS_ENDPOINT_URL and check it; writes $INFRA_OUTPUTS.
#
#   infra/deploy/deploy.sh PCA       root CA in AWS Private CA, one deploy
#   infra/deploy/deploy.sh OFFLINE   root key in the HSM: phase 1 (intermediate CSR), the ceremony signs
#                                    it (`hsm-demo key-ceremony sign-intermediate`), phase 2 (activation)
#
# Environment: INFRA_STACK (hsm-demo-pki), INFRA_PARAMS ("K=V K=V" extra template parameters),
# INFRA_OUTPUTS (.run/infra-outputs.json), PY (.venv/bin/python), HSM_DEMO (target/debug/hsm-demo),
# INFRA_CEREMONY_DIR (.run/ceremony: the ceremony's root.pem and transcript.jsonl), INFRA_OFFLINE_SIGNER
# (hsm | openssl; openssl = a throw-away root key on disk, ONLY to exercise the template's two phases
# without an HSM - never for anything real).
#
# The HSM of the offline root: when the caller sets neither SOFTHSM2_CONF nor HSM_DEMO_MODULE, a
# project-local SoftHSM2 token store is used (.run/ceremony-token/: softhsm2.conf, tokens/, a random
# dev PIN in a 0600 file; token 'hsm-demo-offline-root', created on first use) - never the system token
# directory. Otherwise the caller's HSM with HSM_DEMO_TOKEN / HSM_DEMO_PIN as they are. The PIN reaches
# hsm-demo only through HSM_DEMO_PIN (environment), never argv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mode=${1:-PCA}
stack=${INFRA_STACK:-hsm-demo-pki}
py=${PY:-$root/.venv/bin/python}
run_dir=${RUN_DIR:-$root/.run}
outputs=${INFRA_OUTPUTS:-$run_dir/infra-outputs.json}
work=$run_dir/infra/$stack
mkdir -p "$work"
extra=()
for kv in ${INFRA_PARAMS:-}; do extra+=(--param "$kv"); done
stackpy() { "$py" "$here/stack.py" "$@"; }

# local_token_store CEREMONY_DIR: unless the caller chose an HSM (SOFTHSM2_CONF or HSM_DEMO_MODULE), use
# the project-local SoftHSM2 store .run/ceremony-token/ (created with its token on first use).
local_token_store() {
    [ -n "${SOFTHSM2_CONF:-}${HSM_DEMO_MODULE:-}" ] && return 0
    local store=$run_dir/ceremony-token label=hsm-demo-offline-root
    command -v softhsm2-util >/dev/null || { echo "error: softhsm2-util not found (make deps-apt)" >&2; exit 1; }
    export SOFTHSM2_CONF=$store/softhsm2.conf HSM_DEMO_TOKEN=$label
    if [ ! -s "$store/pin" ]; then
        if [ -s "$1/root.pem" ]; then
            echo "error: $1/root.pem exists but its project-local token store $store does not: remove $1 or set SOFTHSM2_CONF/HSM_DEMO_TOKEN to the ceremony's HSM" >&2
            exit 1
        fi
        rm -rf "$store"   # a half-made store from an interrupted first use
        mkdir -p "$store/tokens"
        (umask 077; od -An -N8 -tu1 /dev/urandom | tr -d ' \n' | cut -c1-12 >"$store/pin.tmp")
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
            "$store/tokens" >"$SOFTHSM2_CONF"
        local pin; pin=$(cat "$store/pin.tmp")
        # softhsm2-util reads PINs only from argv or a terminal; this throw-away dev token's SO PIN is random too.
        softhsm2-util --init-token --free --label "$label" --so-pin "$(od -An -N8 -tu1 /dev/urandom | tr -d ' \n' | cut -c1-12)" \
            --pin "$pin" >/dev/null || { echo "error: softhsm2-util could not create the token $label in $store" >&2; exit 1; }
        mv "$store/pin.tmp" "$store/pin"
        echo "project-local SoftHSM2 token '$label' created in $store (dev PIN in $store/pin, mode 0600)" >&2
    fi
    HSM_DEMO_PIN=$(cat "$store/pin")   # this token's PIN, whatever the caller's environment says
    export HSM_DEMO_PIN
}

case "$mode" in
PCA)
    stackpy deploy --stack "$stack" --param RootMode=PCA "${extra[@]}" >"$work/deploy.json"
    ;;
OFFLINE)
  if stackpy output --stack "$stack" --key IssuingCaArn >/dev/null 2>&1; then
    # Already activated: redeploy phase 2 with the same certificates (an update; going back to
    # phase 1 would switch the issuing CA off).
    for f in intermediate.pem root.pem; do
        [ -s "$work/$f" ] || { echo "error: stack $stack is activated but $work/$f is missing: cannot redeploy phase 2" >&2; exit 1; }
    done
    echo "offline root: stack already activated, redeploying phase 2 with $work/intermediate.pem" >&2
  else
    signer=${INFRA_OFFLINE_SIGNER:-hsm}
    hsm=${HSM_DEMO:-$root/target/debug/hsm-demo}
    ceremony=${INFRA_CEREMONY_DIR:-$run_dir/ceremony}
    if [ "$signer" = hsm ]; then   # the offline root's HSM is checked before any stack is created
        [ -x "$hsm" ] || { echo "error: $hsm not built (cargo build)" >&2; exit 1; }
        local_token_store "$ceremony"
    fi
    echo "offline root, phase 1: create the intermediate (SUBORDINATE) and read its CSR" >&2
    stackpy deploy --stack "$stack" --param RootMode=OFFLINE --param OfflinePhase=1 "${extra[@]}" >"$work/phase1.json"
    stackpy output --stack "$stack" --key IntermediateCsr >"$work/intermediate.csr.tmp"
    mv "$work/intermediate.csr.tmp" "$work/intermediate.csr"
    openssl req -in "$work/intermediate.csr" -noout -verify 2>/dev/null \
        || { echo "error: the stack's IntermediateCsr output is not a valid CSR" >&2; exit 1; }
    case "$signer" in
    hsm)
        if [ ! -s "$ceremony/root.pem" ]; then
            echo "no offline root yet: running hsm-demo key-ceremony (token ${HSM_DEMO_TOKEN:-<the single token>}, $ceremony)" >&2
            "$hsm" key-ceremony --out-dir "$ceremony" ${INFRA_CEREMONY_ARGS:-}
        fi
        [ -s "$ceremony/root.pem" ] || { echo "error: no root certificate at $ceremony/root.pem after the key ceremony (set INFRA_CEREMONY_DIR)" >&2; exit 1; }
        cp "$ceremony/root.pem" "$work/root.pem"
        rm -f "$work/intermediate.pem"   # stale from an earlier phase 1: sign-intermediate never overwrites
        "$hsm" key-ceremony sign-intermediate --ceremony-dir "$ceremony" --csr "$work/intermediate.csr" --out "$work/intermediate.pem"
        # The ceremony record must still verify against the root, now with the intermediate signing in it.
        "$hsm" key-ceremony verify-transcript "$ceremony/transcript.jsonl" --cert "$ceremony/root.pem" >&2 \
            || { echo "error: the ceremony transcript $ceremony/transcript.jsonl does not verify after sign-intermediate" >&2; exit 1; }
        ;;
    openssl)
        echo "WARNING: INFRA_OFFLINE_SIGNER=openssl - throw-away root key on disk, for template tests only" >&2
        "$here/dev_offline_root.sh" "$work"
        ;;
    *) echo "error: INFRA_OFFLINE_SIGNER must be hsm or openssl" >&2; exit 1 ;;
    esac
  fi
    echo "offline root, phase 2: activate the intermediate with the offline-signed certificate" >&2
    stackpy deploy --stack "$stack" --param RootMode=OFFLINE --param OfflinePhase=2 \
        --param "OfflineIntermediateCertificate=@$work/intermediate.pem" \
        --param "OfflineRootCertificate=@$work/root.pem" "${extra[@]}" >"$work/phase2.json"
    ;;
*)
    echo "error: root mode must be PCA or OFFLINE, not '$mode'" >&2; exit 1 ;;
esac
stackpy check --stack "$stack" --out "$outputs"
