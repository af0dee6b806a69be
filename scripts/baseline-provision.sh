#!/usr/bin/env bash
# The documented baseline: the per-device shell pipeline a user would write without hsm-demo
# (benchmark 1 of docs/benchmarks.md compares `hsm-demo provision --manifest` against it).
#
#   baseline-provision.sh MANIFEST OUT_DIR
#
# MANIFEST: CSV with the header `device_id,cn,san_dns,san_uri,template` (SANs `;`-separated,
# template client|server|plain), the same file `hsm-demo provision --manifest` reads.
# For each device, one after the other:
#   1. pkcs11-tool --keypairgen --key-type EC:prime256v1 --id <id> --label device-<id>
#   2. openssl req -new -engine pkcs11 -keyform engine -key "pkcs11:…?pin-source=file:…" (libp11 engine)
#   3. aws acm-pca issue-certificate --idempotency-token <hash of CA, device, CSR>
#   4. aws acm-pca wait certificate-issued
#   5. aws acm-pca get-certificate            -> OUT_DIR/<id>.cert.pem, OUT_DIR/<id>.chain.pem
#   6. aws dynamodb put-item --condition-expression attribute_not_exists(pk)
#
# Environment:
#   CA_ARN         issuing CA (required)          TABLE        DynamoDB table with keys pk/sk (S)
#   TOKEN_LABEL    PKCS#11 token label (required) PIN_FILE     file holding the user PIN (required)
#   PKCS11_MODULE  [/usr/lib/softhsm/libsofthsm2.so]   AWS_CLI  [aws]   VALIDITY_DAYS [30]
#   plus the AWS CLI's own: AWS_ENDPOINT_URL, AWS_REGION, credentials.
# The PIN never appears in argv: pkcs11-tool reads it from the environment (`--pin env:VAR`), the
# engine from a private copy of PIN_FILE without its newline (`pin-source=file:`).
# Prints one line per device: `<device_id> <serial> <seconds>`; stops at the first failure.
set -euo pipefail

usage() { echo "usage: baseline-provision.sh MANIFEST OUT_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
MANIFEST=$1 OUT_DIR=$2
: "${CA_ARN:?error: CA_ARN is not set}" "${TOKEN_LABEL:?error: TOKEN_LABEL is not set}" "${PIN_FILE:?error: PIN_FILE is not set}"
TABLE=${TABLE:-hsm-demo-baseline}
PKCS11_MODULE=${PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
AWS_CLI=${AWS_CLI:-aws}
VALIDITY_DAYS=${VALIDITY_DAYS:-30}
[ -r "$MANIFEST" ] || { echo "error: cannot read manifest $MANIFEST" >&2; exit 1; }
[ -d "$OUT_DIR" ] || { echo "error: $OUT_DIR is not a directory" >&2; exit 1; }
[ -r "$PIN_FILE" ] || { echo "error: cannot read PIN_FILE $PIN_FILE" >&2; exit 1; }
for c in pkcs11-tool openssl python3 "$AWS_CLI"; do
  command -v "$c" >/dev/null || { echo "error: $c not found" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 700 "$WORK"
BASELINE_PIN=$(head -n1 "$PIN_FILE")
export BASELINE_PIN
printf '%s' "$BASELINE_PIN" > "$WORK/pin"   # libp11 reads the whole file: no trailing newline
# The libp11 engine with the module named explicitly (its default is p11-kit's proxy).
cat > "$WORK/openssl.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
MODULE_PATH = $PKCS11_MODULE
init = 0
[req]
distinguished_name = req_dn
[req_dn]
EOF

template_arn() {
  case $1 in
    client|"") echo "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1" ;;
    server) echo "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1" ;;
    plain) echo "arn:aws:acm-pca:::template/EndEntityCertificate/V1" ;;
    *) echo "error: unknown template '$1'" >&2; return 1 ;;
  esac
}

line=0
while IFS=, read -r device_id cn san_dns san_uri template || [ -n "$device_id" ]; do
  line=$((line + 1))
  [ $line -eq 1 ] && continue                                   # header
  [ -z "$device_id" ] || [ "${device_id:0:1}" = "#" ] && continue
  t0=$(date +%s.%N)
  label=device-$device_id
  key_id=$(printf '%s' "$device_id" | sha256sum | cut -c1-16)
  tarn=$(template_arn "$template")

  # 1. key pair in the HSM
  pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin env:BASELINE_PIN \
    --keypairgen --key-type EC:prime256v1 --id "$key_id" --label "$label" >/dev/null 2>"$WORK/err" \
    || { echo "error: $device_id: pkcs11-tool --keypairgen: $(tail -1 "$WORK/err")" >&2; exit 1; }

  # 2. CSR signed by the HSM key through the libp11 engine
  san=""
  IFS=';' read -ra dns <<< "$san_dns"; for d in "${dns[@]}"; do [ -n "$d" ] && san="$san${san:+,}DNS:$d"; done
  IFS=';' read -ra uris <<< "$san_uri"; for u in "${uris[@]}"; do [ -n "$u" ] && san="$san${san:+,}URI:$u"; done
  addext=(); [ -n "$san" ] && addext=(-addext "subjectAltName=$san")
  OPENSSL_CONF=$WORK/openssl.cnf openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=$TOKEN_LABEL;object=$label;type=private?pin-source=file:$WORK/pin" \
    -subj "/CN=${cn:-$device_id}" "${addext[@]}" -sha256 -out "$WORK/csr.pem" 2>"$WORK/err" \
    || { echo "error: $device_id: openssl req: $(tail -1 "$WORK/err")" >&2; exit 1; }

  # 3. IssueCertificate (idempotency token: hash of CA, device and CSR, 32 hex characters)
  token=$( { printf '%s\n%s\n' "$CA_ARN" "$device_id"; cat "$WORK/csr.pem"; } | sha256sum | cut -c1-32)
  cert_arn=$("$AWS_CLI" acm-pca issue-certificate --certificate-authority-arn "$CA_ARN" \
    --csr "fileb://$WORK/csr.pem" --signing-algorithm SHA256WITHECDSA --template-arn "$tarn" \
    --validity "Value=$VALIDITY_DAYS,Type=DAYS" --idempotency-token "$token" \
    --query CertificateArn --output text)

  # 4. wait until issued, 5. fetch certificate and chain
  "$AWS_CLI" acm-pca wait certificate-issued --certificate-authority-arn "$CA_ARN" --certificate-arn "$cert_arn"
  "$AWS_CLI" acm-pca get-certificate --certificate-authority-arn "$CA_ARN" --certificate-arn "$cert_arn" \
    --output json > "$WORK/got.json"
  python3 - "$WORK/got.json" "$OUT_DIR/$device_id" <<'PY'
import json, os, sys
got = json.load(open(sys.argv[1]))
for suffix, key in ((".cert.pem", "Certificate"), (".chain.pem", "CertificateChain")):
    tmp = sys.argv[2] + suffix + ".tmp"
    with open(tmp, "w") as f:
        f.write(got[key].rstrip("\n") + "\n")
    os.replace(tmp, sys.argv[2] + suffix)
PY
  serial=$(openssl x509 -in "$OUT_DIR/$device_id.cert.pem" -noout -serial | cut -d= -f2)

  # 6. record the serial, once
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  "$AWS_CLI" dynamodb put-item --table-name "$TABLE" --condition-expression "attribute_not_exists(pk)" \
    --item "{\"pk\":{\"S\":\"DEVICE#$device_id\"},\"sk\":{\"S\":\"CERT\"},\"serial\":{\"S\":\"$serial\"},\"certificate_arn\":{\"S\":\"$cert_arn\"},\"ca_arn\":{\"S\":\"$CA_ARN\"},\"issued_at\":{\"S\":\"$now\"}}"

  t1=$(date +%s.%N)
  echo "$device_id $serial $(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")"
done < "$MANIFEST"
