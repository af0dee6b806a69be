#!/usr/bin/env bash
# End-to-end test of the infra deployment against $AWS_ENDPOINT_URL (the local stand-in):
# bad parameters fail with a message naming them; both root modes deploy and check (openssl); in OFFLINE
# mode the root is a real SoftHSM2 key from `hsm-demo key-ceremony`, which signs the stack's intermediate
# CSR (`key-ceremony sign-intermediate`) and whose transcript must verify and record that signing; in
# both modes `hsm-demo provision` issues a device certificate from the stack's issuing CA and table that
# `openssl verify -x509_strict -purpose sslclient` accepts up to the independent root (the ceremony's
# root.pem / GetCertificateAuthorityCertificate of the PCA root) and that the registry holds; `pca revoke`
# revokes it and `pca crl` finds it on the CA's CRL; `pca audit-reconcile` against the stack's
# AuditReportBucket is clean (the report lists the certificate, revoked, as the registry does); a second
# deploy updates the same hierarchy (no new CAs); destroy removes it. Prints "N passed, N failed".
#
# Everything is its own: stacks and tables named hsm-demo-e2e-<mode>-<tag>, a fresh SoftHSM2 token store
# in a temporary directory (SOFTHSM2_CONF; never the system token directory), deploy work files under
# that directory. INFRA_OFFLINE_SIGNER=openssl replaces the HSM root by a throw-away on-disk key.
#   HSM_DEMO (target/debug/hsm-demo), PY (.venv/bin/python), AWS_ENDPOINT_URL (http://127.0.0.1:4566)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=${PY:-$root/.venv/bin/python}
hsm=${HSM_DEMO:-$root/target/debug/hsm-demo}
signer=${INFRA_OFFLINE_SIGNER:-hsm}
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}
start=$(date +%s)

die() { echo "error: $*" >&2; exit 1; }
[ -x "$py" ] || die "$py missing (make deps-py)"
[ -x "$hsm" ] || die "$hsm not built (cargo build --bin hsm-demo)"
command -v softhsm2-util >/dev/null || die "softhsm2-util not found (make deps-apt)"
command -v openssl >/dev/null || die "openssl not found (make deps-apt)"
case "$signer" in hsm|openssl) ;; *) die "INFRA_OFFLINE_SIGNER must be hsm or openssl, not '$signer'" ;; esac

T=$(mktemp -d "${TMPDIR:-/tmp}/hsm-demo-infra-e2e.XXXXXX")
tag=$$-$RANDOM
stacks=()
cleanup() {
    local rc=$?
    for s in "${stacks[@]}"; do "$py" "$here/stack.py" destroy --stack "$s" --local-registry-cleanup >/dev/null 2>&1; done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
export RUN_DIR=$T/run   # deploy.sh work files (CSR, signed certificates) and outputs: all temporary

# AWS: the stand-in accepts any credentials (hsm-demo's SDK needs some, and a region).
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
unset HSM_DEMO_MODULE HSM_DEMO_CA_ARN HSM_DEMO_TABLE HSM_DEMO_TOKEN

# HSM: a fresh token store; one token for the offline root, one for the devices. The PIN reaches
# hsm-demo only through the environment (softhsm2-util itself takes it in argv: throw-away token).
export SOFTHSM2_CONF=$T/softhsm2.conf
mkdir -p "$T/tokens" "$RUN_DIR"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$T/tokens" >"$SOFTHSM2_CONF"
HSM_DEMO_PIN=$(od -An -N8 -tu1 /dev/urandom | tr -d ' \n' | cut -c1-10)
export HSM_DEMO_PIN
for label in e2e-root e2e-devices; do
    softhsm2-util --init-token --free --label "$label" --so-pin "$HSM_DEMO_PIN$HSM_DEMO_PIN" --pin "$HSM_DEMO_PIN" \
        >/dev/null || die "softhsm2-util could not create token $label in $T/tokens"
done

passed=0; failed=0
ok()   { echo "ok: $1"; passed=$((passed + 1)); }
bad()  { echo "FAIL: $1" >&2; failed=$((failed + 1)); }
stackpy() { "$py" "$here/stack.py" "$@"; }
json_get() { "$py" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }
stack_cas() { # stack_cas STACK: the stack's Private CA ARNs, sorted (other tests share the stand-in)
    "$py" -c '
import boto3, sys
res = boto3.client("cloudformation").list_stack_resources(StackName=sys.argv[1])["StackResourceSummaries"]
print("\n".join(sorted(r["PhysicalResourceId"] for r in res if r["ResourceType"] == "AWS::ACMPCA::CertificateAuthority")))' "$1"
}
live_of() { # live_of ARN...: how many of these CAs are not DELETED (a vanished CA counts as deleted)
    "$py" -c '
import boto3, sys
pca, n = boto3.client("acm-pca"), 0
for arn in sys.argv[1:]:
    try:
        n += pca.describe_certificate_authority(CertificateAuthorityArn=arn)["CertificateAuthority"]["Status"] != "DELETED"
    except pca.exceptions.ResourceNotFoundException:
        pass
print(n)' "$@"
}
nth_cert() { # nth_cert FILE N: the Nth (1-based) certificate of a PEM bundle
    awk -v n="$2" '/-----BEGIN CERTIFICATE-----/{i++} i==n{print} i==n && /-----END CERTIFICATE-----/{exit}' "$1"
}
path_len() { # path_len PEM-FILE: "N", "none" (CA without pathLen), or "not-a-ca"
    local t; t=$(openssl x509 -in "$1" -noout -ext basicConstraints 2>/dev/null)
    grep -q "CA:TRUE" <<<"$t" || { echo not-a-ca; return; }
    grep -o 'pathlen:[0-9]*' <<<"$t" | cut -d: -f2 | grep . || echo none
}
der_sha256() { openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1; }
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

s=hsm-demo-e2e-bad-$tag
stacks+=("$s")
expect_error "unknown key algorithm" "parameter KeyAlgorithm: 'ED25519' is not one of" --stack $s --param KeyAlgorithm=ED25519
expect_error "intermediate validity beyond the root" "rule ValidityOrder: IntermediateValidityYears \(15\) must be shorter than RootValidityYears" \
    --stack $s --param RootValidityYears=10 --param IntermediateValidityYears=15
expect_error "offline phase 2 without the signed certificate" "rule OfflinePhase2NeedsSignedCertificate: OfflineIntermediateCertificate is required" \
    --stack $s --param RootMode=OFFLINE --param OfflinePhase=2
expect_error "offline phase 2 with a missing certificate file" "parameter OfflineIntermediateCertificate: file .*missing" \
    --stack $s --param RootMode=OFFLINE --param OfflinePhase=2 --param OfflineIntermediateCertificate=@/nonexistent/intermediate.pem
err=$(INFRA_STACK=$s "$here/deploy.sh" HSM 2>&1); [ $? -ne 0 ] && grep -q "^error: root mode must be PCA or OFFLINE" <<<"$err" \
    && ok "unknown root mode rejected" || bad "unknown root mode: $err"
mkdir -p "$T/orphan/ceremony" && cp "$T/softhsm2.conf" "$T/orphan/ceremony/root.pem"   # any non-empty file
err=$(env -u SOFTHSM2_CONF RUN_DIR="$T/orphan" INFRA_STACK=$s HSM_DEMO="$hsm" INFRA_OFFLINE_SIGNER=hsm "$here/deploy.sh" OFFLINE 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "^error: .*root.pem exists but its project-local token store .* does not" <<<"$err" \
    && ! stackpy output --stack $s --key RootMode >/dev/null 2>&1 \
    && ok "OFFLINE: a ceremony root without its token store is refused before any stack exists" \
    || bad "OFFLINE orphan ceremony root: rc=$rc: $err"

ceremony=$T/ceremony
for mode in PCA OFFLINE; do
    lc=$(tr A-Z a-z <<<"$mode")
    stack=hsm-demo-e2e-$lc-$tag
    stacks+=("$stack")
    out=$RUN_DIR/infra-e2e-$mode.json
    deploy() {
        INFRA_STACK=$stack INFRA_OUTPUTS=$out INFRA_PARAMS="RegistryTableName=$stack" INFRA_OFFLINE_SIGNER=$signer \
            INFRA_CEREMONY_DIR=$ceremony HSM_DEMO=$hsm HSM_DEMO_TOKEN=e2e-root "$here/deploy.sh" "$mode"
    }
    if deploy; then
        ok "$mode: deployed; CAs ACTIVE, pathLen 1/0 and chain verified by openssl (stack.py check)"
    else
        bad "$mode: deploy/check failed"; continue
    fi
    cas=$(stack_cas "$stack"); want=3; [ "$mode" = OFFLINE ] && want=2
    # shellcheck disable=SC2086 # one ARN per word
    [ "$(live_of $cas)" -eq $want ] && ok "$mode: $want live Private CAs in the stack" || bad "$mode: stack CAs: $cas (expected $want live)"

    # pathLen of the tiers as served by the stack (issuing CA chain: issuing, intermediate, root).
    chain=$(json_get "$out" IssuingCaChainFile)
    for n in 1 2 3; do nth_cert "$chain" $n >"$T/$lc-tier$n.pem"; done
    pl="$(path_len "$T/$lc-tier1.pem")/$(path_len "$T/$lc-tier2.pem")"
    [ "$pl" = "0/1" ] && ok "$mode: openssl: issuing CA pathlen:0, intermediate pathlen:1" || bad "$mode: pathLen issuing/intermediate = $pl"

    # The independent trust anchor.
    if [ "$mode" = PCA ]; then
        stackpy ca-certificate --arn "$(json_get "$out" RootCaArn)" >"$T/$lc-root.pem" \
            && ok "$mode: root from GetCertificateAuthorityCertificate of RootCaArn" || bad "$mode: no root certificate from the PCA root"
    elif [ "$signer" = hsm ]; then
        cp "$ceremony/root.pem" "$T/$lc-root.pem"
        [ "$(path_len "$T/$lc-root.pem")" = 2 ] && ok "OFFLINE: ceremony root is CA:TRUE pathlen:2" \
            || bad "OFFLINE: ceremony root pathLen $(path_len "$T/$lc-root.pem")"
        [ "$(der_sha256 "$T/$lc-root.pem")" = "$(der_sha256 "$T/$lc-tier3.pem")" ] \
            && ok "OFFLINE: the stack's chain ends in the ceremony's root" || bad "OFFLINE: the stack's root is not the ceremony's"
        if vt=$("$hsm" key-ceremony verify-transcript "$ceremony/transcript.jsonl" --cert "$ceremony/root.pem" 2>&1); then
            ok "OFFLINE: ceremony transcript verifies against root.pem"
        else
            bad "OFFLINE: verify-transcript: $vt"
        fi
        stackpy ca-certificate --arn "$(json_get "$out" IntermediateCaArn)" >"$T/$lc-intermediate-pca.pem"
        "$py" - "$ceremony/transcript.jsonl" "$(der_sha256 "$T/$lc-intermediate-pca.pem")" <<'PYEOF' \
            && ok "OFFLINE: transcript records the signing of the stack's intermediate (sha256, pathLen 1)" \
            || bad "OFFLINE: transcript does not record the intermediate the stack activated"
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
signed = [e["details"] for e in entries if e["step"] == "intermediate-signed"]
sys.exit(not (len(signed) == 1 and signed[0]["sha256"] == sys.argv[2] and signed[0]["path_len"] == 1))
PYEOF
    else
        cp "$RUN_DIR/infra/$stack/root.pem" "$T/$lc-root.pem"   # the throw-away on-disk root
    fi

    # A device certificate from the stack's issuing CA and registry table, keys in the HSM.
    device=e2e-device-$lc
    mkdir -p "$T/certs-$lc"
    ca_arn=$(json_get "$out" IssuingCaArn); table=$(json_get "$out" TableName)
    if HSM_DEMO_TOKEN=e2e-devices "$hsm" provision --ca-arn "$ca_arn" --table "$table" --device-id "$device" \
            --out-dir "$T/certs-$lc" >"$T/$lc-provision.log" 2>&1; then
        ok "$mode: hsm-demo provision issued $device from IssuingCaArn into $table"
        cert=$T/certs-$lc/$device.cert.pem
        cat "$T/$lc-tier1.pem" "$T/$lc-tier2.pem" >"$T/$lc-untrusted.pem"   # issuing + intermediate, no root
        v=$(openssl verify -x509_strict -purpose sslclient -CAfile "$T/$lc-root.pem" -untrusted "$T/$lc-untrusted.pem" "$cert" 2>&1) \
            && ok "$mode: openssl verify -x509_strict -purpose sslclient: device -> issuing -> intermediate -> root OK" \
            || bad "$mode: device certificate does not verify: $v"
        # Control: the same chain under a foreign root with the same subject must not verify.
        openssl ecparam -name prime256v1 -genkey -noout -out "$T/$lc-foreign.key" 2>/dev/null
        openssl req -x509 -new -key "$T/$lc-foreign.key" -sha256 -days 30 \
            -subj "$(openssl x509 -in "$T/$lc-root.pem" -noout -subject -nameopt compat | sed 's/^subject=//')" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$T/$lc-foreign.pem"
        openssl verify -x509_strict -purpose sslclient -CAfile "$T/$lc-foreign.pem" -untrusted "$T/$lc-untrusted.pem" "$cert" >/dev/null 2>&1 \
            && bad "$mode: device certificate verified under a foreign root" || ok "$mode: control: a foreign root with the same name is rejected"
        serial=$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2 | tr A-F a-f)
        if "$hsm" --json pca show --device-id "$device" --table "$table" >"$T/$lc-show.json" 2>"$T/$lc-show.err"; then
            reg=$(json_get "$T/$lc-show.json" current.serial); st=$(json_get "$T/$lc-show.json" current.status)
            [ "$(tr A-F a-f <<<"$reg")" = "$serial" ] && [ "$st" = ISSUED ] \
                && ok "$mode: registry (pca show --json) holds serial $serial, ISSUED" \
                || bad "$mode: registry has serial $reg ($st), certificate has $serial"
        else
            bad "$mode: pca show failed: $(cat "$T/$lc-show.err")"
        fi

        # Revocation reaches relying parties: pca revoke, then the CA's CRL (fetched from its bucket,
        # signature verified) lists the serial. The stand-in publishes crl/<ca-id>.crl after each
        # revocation (AWS: within about 30 minutes).
        if "$hsm" pca revoke --serial "$serial" --reason key-compromise --ca-arn "$ca_arn" --table "$table" \
                >"$T/$lc-revoke.log" 2>&1; then
            ok "$mode: hsm-demo pca revoke --reason key-compromise revoked $serial"
            if "$hsm" pca crl --ca-arn "$ca_arn" --serial "$serial" >"$T/$lc-crl.txt" 2>&1 \
                    && grep -Eiq "^serial $serial: revoked \(key-compromise, " "$T/$lc-crl.txt"; then
                ok "$mode: hsm-demo pca crl: $(grep -i "^serial " "$T/$lc-crl.txt")"
            else
                bad "$mode: the CRL does not list $serial as revoked: $(cat "$T/$lc-crl.txt")"
            fi
        else
            bad "$mode: hsm-demo pca revoke failed: $(tail -3 "$T/$lc-revoke.log")"
        fi

        # The CA's audit report (PCA's own list of what it issued and revoked) agrees with the registry.
        reports=$(json_get "$out" AuditReportBucket)
        if "$hsm" pca audit-reconcile --ca-arn "$ca_arn" --bucket "$reports" --table "$table" \
                >"$T/$lc-audit.txt" 2>&1; then
            ok "$mode: hsm-demo pca audit-reconcile is clean (exit 0): $(head -1 "$T/$lc-audit.txt")"
        else
            bad "$mode: pca audit-reconcile (rc=$?): $(cat "$T/$lc-audit.txt")"
        fi
    else
        bad "$mode: hsm-demo provision failed: $(tail -3 "$T/$lc-provision.log")"
    fi

    cp "$out" "$out.first"
    if deploy >/dev/null; then
        [ "$(stack_cas "$stack")" = "$cas" ] && ok "$mode: second deploy is an update (same CAs, no new one)" \
            || bad "$mode: second deploy changed the CAs: $(stack_cas "$stack" | tr '\n' ' ')"
        "$py" -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); sys.exit(a["IssuingCaArn"]!=b["IssuingCaArn"])' "$out.first" "$out" \
            && ok "$mode: same IssuingCaArn after the second deploy" || bad "$mode: IssuingCaArn changed"
    else
        bad "$mode: second deploy failed"
    fi
    "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["TableName"] and d["IssuingCaArn"] and d["ProvisioningPolicyArn"]' "$out" \
        && ok "$mode: outputs file has TableName, IssuingCaArn, ProvisioningPolicyArn" || bad "$mode: outputs file incomplete"
    if stackpy destroy --stack "$stack" --local-registry-cleanup && ! stackpy output --stack "$stack" --key RootMode >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        [ "$(live_of $cas)" -eq 0 ] && ok "$mode: destroyed (the stack's CAs are DELETED)" || bad "$mode: CAs left after destroy"
    else
        bad "$mode: destroy failed"
    fi
done
echo "infra-e2e (offline signer: $signer): $passed passed, $failed failed in $(( $(date +%s) - start )) s"
[ "$failed" -eq 0 ]
