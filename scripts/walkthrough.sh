#!/usr/bin/env bash
# `make walkthrough`: docs/acm-pca-design.md §6 run live against the local AWS stand-in.
#
# Each step prints the §6 heading it illustrates, the command, its result (certificate fields via
# openssl, the registry item via `hsm-demo --json pca show`) and the IAM statement of
# infra/templates/hierarchy.yaml that allows the call. Everything it creates is its own and is
# removed at the end: a CloudFormation stack + registry table in the stand-in (unique names) and a
# fresh SoftHSM2 token in a temporary directory (never the system token directory).
#
#   BIN   hsm-demo binary (default: target/debug/hsm-demo)
#   ROOT  project root (default: this script's parent)
#   PY    python with boto3 (default: .venv/bin/python; `make deps-py`)
#   AWS_ENDPOINT_URL  the stand-in (default http://127.0.0.1:4566; `make aws-up`). Only a local
#                     endpoint is accepted: the walkthrough deploys and deletes a stack.
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BIN:-$ROOT/target/debug/hsm-demo}
PY=${PY:-$ROOT/.venv/bin/python}
TEMPLATE=$ROOT/infra/templates/hierarchy.yaml
export AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}

die() { echo "error: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not built (run: cargo build --bin hsm-demo)"
[ -x "$PY" ] || die "$PY missing (run: make deps-py)"
command -v softhsm2-util >/dev/null || die "softhsm2-util missing (run: make deps-apt)"
command -v openssl >/dev/null || die "openssl missing (run: make deps-apt)"
[[ "$AWS_ENDPOINT_URL" =~ ^https?://(127\.[0-9.]+|localhost)(:[0-9]+)?/?$ ]] \
  || die "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL is not local: the walkthrough only runs against the local stand-in (make aws-up)"
"$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=3)' \
  "${AWS_ENDPOINT_URL%/}" 2>/dev/null \
  || die "no AWS stand-in answers at $AWS_ENDPOINT_URL (run: make aws-up)"

START=$(date +%s)
TAG=wt-$$-$RANDOM
STACK=hsm-demo-walkthrough-$TAG
TABLE=hsm-demo-walkthrough-$TAG
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hsm-demo-walkthrough.XXXXXX")
DEVICE=dev-0001
SPIFFE_ID=spiffe://example.org/device/$DEVICE

# AWS: the stand-in accepts any credentials; this access key scopes nothing else of ours.
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIDWALKTHROUGH AWS_SECRET_ACCESS_KEY=walkthrough AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_ACM_PCA AWS_ENDPOINT_URL_DYNAMODB 2>/dev/null || true
export HSM_DEMO_TABLE=$TABLE

# HSM: a fresh SoftHSM2 token store in $WORK (SOFTHSM2_CONF before any PKCS#11 call).
export SOFTHSM2_CONF=$WORK/softhsm2.conf
mkdir -p "$WORK/tokens" "$WORK/certs"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
  "$WORK/tokens" >"$SOFTHSM2_CONF"
unset HSM_DEMO_MODULE HSM_DEMO_CA_ARN
export HSM_DEMO_TOKEN=walkthrough
export HSM_DEMO_PIN=$(od -An -N6 -tu1 /dev/urandom | tr -d ' \n' | cut -c1-8)   # environment only, never argv of hsm-demo

cleanup() {
  local rc=$?
  "$PY" "$ROOT/infra/deploy/stack.py" destroy --stack "$STACK" --local-registry-cleanup >/dev/null 2>&1 || true
  rm -rf "$WORK" "$ROOT/.run/infra/$STACK"
  exit $rc
}
trap cleanup EXIT

if [ -t 1 ]; then B=$'\033[1m' C=$'\033[36m' N=$'\033[0m'; else B='' C='' N=''; fi
heading() { printf '\n%s━━ %s%s\n' "$B" "$1" "$N"; }
say() { printf '%s\n' "$*"; }
run() { # run CMD...: print it with $-prefix, run it, indent its output
  printf '%s$ %s%s\n' "$C" "$*" "$N"
  "$@" 2>&1 | sed 's/^/  /'
  return "${PIPESTATUS[0]}"
}
hsm() { printf '%s$ hsm-demo %s%s\n' "$C" "$*" "$N"; "$BIN" "$@" 2>&1 | sed 's/^/  /'; return "${PIPESTATUS[0]}"; }
# hsm_json ARGS...: `hsm-demo --json ARGS`, pretty-printed
hsm_json() {
  printf '%s$ hsm-demo --json %s%s\n' "$C" "$*" "$N"
  "$BIN" --json "$@" | "$PY" -m json.tool | sed 's/^/  /'
  return "${PIPESTATUS[0]}"
}
# iam POLICY SID: the statement as written in infra/templates/hierarchy.yaml
iam() {
  printf '  IAM (%s, infra/templates/hierarchy.yaml):\n' "$1"
  "$PY" - "$TEMPLATE" "$1" "$2" <<'PYEOF' | sed 's/^/    /'
import sys
path, policy, sid = sys.argv[1:]
lines = open(path).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.strip() == f"{policy}:")
for i in range(start, len(lines)):
    if lines[i].strip() == f"- Sid: {sid}":
        col = lines[i].index("-")
        out = [lines[i][col:]]
        for l in lines[i + 1:]:
            if l.strip() and (len(l) - len(l.lstrip()) <= col):
                break
            if l.strip() and not l.strip().startswith("#"):
                out.append(l[col:])
        print("\n".join(out))
        break
else:
    sys.exit(f"statement {sid} not found in {policy}")
PYEOF
}
json_get() { "$PY" -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"; }
cert_fields() {
  openssl x509 -in "$1" -noout -subject -issuer -serial -dates \
    -ext basicConstraints,keyUsage,extendedKeyUsage,subjectAltName 2>&1 | sed 's/^/  /'
}

# ---------------------------------------------------------------- setting the stage
heading "Set-up: CA hierarchy from infra/ in the local stand-in, a fresh SoftHSM2 token"
say "stand-in: $AWS_ENDPOINT_URL   stack: $STACK   registry table: $TABLE   token dir: $WORK/tokens"
run env INFRA_STACK="$STACK" INFRA_PARAMS="RegistryTableName=$TABLE" INFRA_OUTPUTS="$WORK/outputs.json" \
  RUN_DIR="$ROOT/.run" PY="$PY" "$ROOT/infra/deploy/deploy.sh" PCA
CA_ARN=$(json_get IssuingCaArn <"$WORK/outputs.json")
say "issuing CA (PathLen0): $CA_ARN"
printf '%s$ softhsm2-util --init-token --free --label walkthrough --so-pin … --pin $HSM_DEMO_PIN%s\n' "$C" "$N"
softhsm2-util --init-token --free --label walkthrough --so-pin "$HSM_DEMO_PIN$HSM_DEMO_PIN" --pin "$HSM_DEMO_PIN" \
  | sed 's/^/  /'
hsm list-slots
cd "$WORK"

# ---------------------------------------------------------------- §6.1
heading "§6.1 End-to-end flow: device request → installed certificate"
say "provision: intent → key in the HSM → CSR signed in the HSM → IssueCertificate → wait → one transaction → files"
hsm provision --ca-arn "$CA_ARN" --device-id "$DEVICE" --san-uri "$SPIFFE_ID" --out-dir certs
iam ProvisioningPolicy IssueEndEntityCertificatesOnly
iam ProvisioningPolicy ReadIssuingCaAndIssuedCertificates
iam ProvisioningPolicy RegistryIssuingPath
say "certificate fields (openssl):"
cert_fields "certs/$DEVICE.cert.pem"
awk '/BEGIN CERT/{n++} {print > ("chain-" n ".pem")}' "certs/$DEVICE.chain.pem"
ROOT_PEM=$(ls chain-*.pem | sort -t- -k2 -n | tail -1)
run openssl verify -x509_strict -purpose sslclient -CAfile "$ROOT_PEM" -untrusted "certs/$DEVICE.chain.pem" \
  "certs/$DEVICE.cert.pem"
say "the certificate's public key is the HSM key's (the private key never left the token):"
hsm export-pubkey --label "device-$DEVICE" --out hsm-pub.pem >/dev/null
openssl x509 -in "certs/$DEVICE.cert.pem" -pubkey -noout >cert-pub.pem
if cmp -s hsm-pub.pem cert-pub.pem; then say "  identical public keys ✓"; else die "certificate public key differs from the HSM key"; fi
SERIAL=$("$BIN" --json pca show --device-id "$DEVICE" | json_get current.serial)

say ""
say "rerun of the same command (§3.2 idempotency): no second certificate"
hsm provision --ca-arn "$CA_ARN" --device-id "$DEVICE" --san-uri "$SPIFFE_ID" --out-dir certs
SERIAL2=$("$BIN" --json pca show --device-id "$DEVICE" | json_get current.serial)
[ "$SERIAL" = "$SERIAL2" ] || die "the rerun changed the serial ($SERIAL -> $SERIAL2)"
say "  same serial $SERIAL ✓"

say ""
say "a fleet: the same per-device flow for every line of a manifest — streamed, paced at the AWS quotas,"
say "resumable, several runners may share it (§3.1 Fleets, §5.7)"
{ echo "device_id,san_uri"; for i in 1 2 3 4 5; do echo "fleet-000$i,spiffe://example.org/device/fleet-000$i"; done; } > fleet.csv
run cat fleet.csv
hsm provision --ca-arn "$CA_ARN" --manifest fleet.csv --out-dir certs
say "rerun of the same manifest: every device already present, nothing issued"
hsm provision --ca-arn "$CA_ARN" --manifest fleet.csv --out-dir certs

# ---------------------------------------------------------------- §6.3
heading "§6.3 DynamoDB registry schema"
say "everything about the device: ONE consistent Query on pk = DEVICE#$DEVICE (CURRENT, CERT#000000, INTENT#000000)"
hsm_json pca show --device-id "$DEVICE"
iam ProvisioningPolicy RegistryIssuingPath
say "the serial marker: ONE Query on pk = SERIAL#$SERIAL (sk = CA#<issuing CA ARN>)"
hsm_json pca show --serial "$SERIAL"

# ---------------------------------------------------------------- §6.4
heading "§6.4 SPIRE integration"
say "the SPIFFE ID is in the device certificate's SAN (from --san-uri):"
openssl x509 -in "certs/$DEVICE.cert.pem" -noout -ext subjectAltName | sed 's/^/  /'
say "SPIRE's upstream authority (option A, §6.4): under the INTERMEDIATE, not the PathLen0 issuing CA:"
INTERMEDIATE=$(json_get IntermediateCaArn <"$WORK/outputs.json")
cat <<EOF | sed 's/^/    /'
UpstreamAuthority "aws_pca" {
  plugin_data {
    region                    = "us-east-1"
    certificate_authority_arn = "$INTERMEDIATE"
    ca_signing_template_arn   = "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1"
  }
}
EOF
say "  (issuing CA: $(openssl x509 -in chain-1.pem -noout -ext basicConstraints | tail -1 | sed 's/^ *//') — a CA certificate below it would violate its pathLen)"

# ---------------------------------------------------------------- §6.2 revocation path
heading "§6.2 IAM: the real policies (infra/templates/hierarchy.yaml)"
say "revocation is a separate policy: the provisioning role cannot revoke"
hsm pca revoke --serial "$SERIAL" --reason superseded
iam RevocationPolicy RevokeDeviceCertificates
iam RevocationPolicy CallerMayWriteTheCrl
iam RevocationPolicy RegistryMarkRevoked
hsm pca show --device-id "$DEVICE"
say "the revocation reaches relying parties through the CA's CRL (the stand-in publishes it at once; AWS in ~30 min)"
hsm pca crl --ca-arn "$CA_ARN" --serial "$SERIAL"
iam CrlReadPolicy ReadCrlObjects
say "re-provisioning after the revocation issues generation 1 (same HSM key: reason was superseded, not key-compromise)"
hsm provision --ca-arn "$CA_ARN" --device-id "$DEVICE" --san-uri "$SPIFFE_ID" --out-dir certs
hsm pca show --device-id "$DEVICE"
say "operator check: unfinished issuances (a Scan: an operators' tool, granted to neither the provisioning nor the revocation policy)"
hsm pca reconcile
say "auditor check: the CA's own audit report (every certificate it issued or revoked) joined with the registry"
hsm pca audit-reconcile --ca-arn "$CA_ARN" --bucket "$(json_get AuditReportBucket <"$WORK/outputs.json")"
iam AuditPolicy AuditReportsOfTheIssuingCa
iam AuditPolicy RegistryReads

printf '\n%swalkthrough OK%s in %s s; ' "$B" "$N" "$(( $(date +%s) - START ))"
say "removing stack $STACK, table $TABLE and the token directory"
