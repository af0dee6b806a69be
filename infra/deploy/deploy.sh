#!/usr/bin/env bash
# Deploy the hsm-demo PKI stack into $AWS_ENDPOINT_URL and check it; writes $INFRA_OUTPUTS.
#
#   infra/deploy/deploy.sh PCA       root CA in AWS Private CA, one deploy
#   infra/deploy/deploy.sh OFFLINE   root key in the HSM: phase 1 (intermediate CSR), the ceremony signs
#                                    it (`hsm-demo key-ceremony sign-intermediate`), phase 2 (activation)
#
# Environment: INFRA_STACK (hsm-demo-pki), INFRA_PARAMS ("K=V K=V" extra template parameters),
# INFRA_OUTPUTS (.run/infra-outputs.json), PY (.venv/bin/python), HSM_DEMO (target/debug/hsm-demo),
# INFRA_CEREMONY_DIR (.run/ceremony: where the ceremony keeps root.pem), INFRA_OFFLINE_SIGNER
# (hsm | openssl; openssl = a throw-away root key on disk, ONLY to exercise the template's two phases
# while the ceremony command is not available - never for anything real).
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
    echo "offline root, phase 1: create the intermediate (SUBORDINATE) and read its CSR" >&2
    stackpy deploy --stack "$stack" --param RootMode=OFFLINE --param OfflinePhase=1 "${extra[@]}" >"$work/phase1.json"
    stackpy output --stack "$stack" --key IntermediateCsr >"$work/intermediate.csr.tmp"
    mv "$work/intermediate.csr.tmp" "$work/intermediate.csr"
    openssl req -in "$work/intermediate.csr" -noout -verify 2>/dev/null \
        || { echo "error: the stack's IntermediateCsr output is not a valid CSR" >&2; exit 1; }
    case "${INFRA_OFFLINE_SIGNER:-hsm}" in
    hsm)
        hsm=${HSM_DEMO:-$root/target/debug/hsm-demo}
        ceremony=${INFRA_CEREMONY_DIR:-$run_dir/ceremony}
        [ -x "$hsm" ] || { echo "error: $hsm not built (cargo build)" >&2; exit 1; }
        if [ ! -s "$ceremony/root.pem" ]; then
            echo "no offline root yet: running hsm-demo key-ceremony (project-local SoftHSM token)" >&2
            "$hsm" key-ceremony --out-dir "$ceremony" ${INFRA_CEREMONY_ARGS:-}
        fi
        [ -s "$ceremony/root.pem" ] || { echo "error: no root certificate at $ceremony/root.pem after the key ceremony (set INFRA_CEREMONY_DIR)" >&2; exit 1; }
        cp "$ceremony/root.pem" "$work/root.pem"
        rm -f "$work/intermediate.pem"   # stale from an earlier phase 1: sign-intermediate never overwrites
        "$hsm" key-ceremony sign-intermediate --ceremony-dir "$ceremony" --csr "$work/intermediate.csr" --out "$work/intermediate.pem"
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
