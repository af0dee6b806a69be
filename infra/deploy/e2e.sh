#!/usr/bin/env bash
# End-to-end test of the infra deployment against $AWS_ENDPOINT_URL (the local stand-in):
# bad parameters fail with a message naming them, both root modes deploy and check (openssl), a second
# deploy updates the same hierarchy (no new CAs), destroy removes it. Prints "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PY:-$root/.venv/bin/python}
export RUN_DIR=${RUN_DIR:-$root/.run}
passed=0; failed=0
ok()   { echo "ok: $1"; passed=$((passed + 1)); }
bad()  { echo "FAIL: $1" >&2; failed=$((failed + 1)); }
stackpy() { "$py" "$here/stack.py" "$@"; }
live_cas() { # non-DELETED Private CAs of the account
    AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing} \
    AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} "$py" -c '
import boto3
cas = boto3.client("acm-pca").list_certificate_authorities()["CertificateAuthorities"]
print(sum(1 for c in cas if c["Status"] != "DELETED"))'
}
expect_error() { # name, expected stderr regex, args...
    local name=$1 want=$2; shift 2
    local err; err=$(stackpy deploy "$@" 2>&1 >/dev/null); local rc=$?
    if [ $rc -ne 0 ] && grep -Eq "^error: $want" <<<"$err" && [ "$(wc -l <<<"$err")" -eq 1 ]; then
        ok "$name rejected: $err"
    else
        bad "$name: rc=$rc, stderr: $err"
    fi
    if stackpy output --stack "$3" --key RootMode >/dev/null 2>&1; then bad "$name: a stack was created"; fi
}

s=hsm-demo-e2e-bad
expect_error "unknown key algorithm" "parameter KeyAlgorithm: 'ED25519' is not one of" --stack $s --param KeyAlgorithm=ED25519
expect_error "intermediate validity beyond the root" "rule ValidityOrder: IntermediateValidityYears \(15\) must not exceed RootValidityYears" \
    --stack $s --param RootValidityYears=10 --param IntermediateValidityYears=15
expect_error "offline phase 2 without the signed certificate" "rule OfflinePhase2NeedsSignedCertificate: OfflineIntermediateCertificate is required" \
    --stack $s --param RootMode=OFFLINE --param OfflinePhase=2
expect_error "offline phase 2 with a missing certificate file" "parameter OfflineIntermediateCertificate: file .*missing" \
    --stack $s --param RootMode=OFFLINE --param OfflinePhase=2 --param OfflineIntermediateCertificate=@/nonexistent/intermediate.pem
err=$(INFRA_STACK=$s "$here/deploy.sh" HSM 2>&1); [ $? -ne 0 ] && grep -q "^error: root mode must be PCA or OFFLINE" <<<"$err" \
    && ok "unknown root mode rejected" || bad "unknown root mode: $err"

for mode in PCA OFFLINE; do
    stack=hsm-demo-e2e-$(tr A-Z a-z <<<"$mode")
    out=$RUN_DIR/infra-e2e-$mode.json
    before=$(live_cas)
    if INFRA_STACK=$stack INFRA_OUTPUTS=$out INFRA_PARAMS="RegistryTableName=$stack" "$here/deploy.sh" "$mode"; then
        ok "$mode: deployed; CAs ACTIVE, pathLen 1/0 and chain verified by openssl"
    else
        bad "$mode: deploy/check failed"; continue
    fi
    after=$(live_cas); want=3; [ "$mode" = OFFLINE ] && want=2
    [ $((after - before)) -eq $want ] && ok "$mode: $want Private CAs created" || bad "$mode: $((after - before)) CAs created, expected $want"
    cp "$out" "$out.first"
    if INFRA_STACK=$stack INFRA_OUTPUTS=$out INFRA_PARAMS="RegistryTableName=$stack" "$here/deploy.sh" "$mode"; then
        [ "$(live_cas)" -eq "$after" ] && ok "$mode: second deploy is an update (no new CA)" || bad "$mode: second deploy created CAs"
        "$py" -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); sys.exit(a["IssuingCaArn"]!=b["IssuingCaArn"])' "$out.first" "$out" \
            && ok "$mode: same IssuingCaArn after the second deploy" || bad "$mode: IssuingCaArn changed"
    else
        bad "$mode: second deploy failed"
    fi
    "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["TableName"] and d["IssuingCaArn"] and d["ProvisioningPolicyArn"]' "$out" \
        && ok "$mode: outputs file has TableName, IssuingCaArn, ProvisioningPolicyArn" || bad "$mode: outputs file incomplete"
    if stackpy destroy --stack "$stack" --local-registry-cleanup && ! stackpy output --stack "$stack" --key RootMode >/dev/null 2>&1; then
        [ "$(live_cas)" -eq "$before" ] && ok "$mode: destroyed (no CA left active)" || bad "$mode: CAs left after destroy"
    else
        bad "$mode: destroy failed"
    fi
done
echo "infra-e2e: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
