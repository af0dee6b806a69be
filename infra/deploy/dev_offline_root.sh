#!/usr/bin/env bash
# TEST-ONLY offline root: a throw-away P-256 root key on disk signs $1/intermediate.csr with pathLen 1.
# Exercises the template's OFFLINE phases without an HSM (INFRA_OFFLINE_SIGNER=openssl), never for
# anything real. The real flow keeps the root key in the HSM (infra/deploy/deploy.sh, signer hsm).
set -euo pipefail
work=$1
key=$work/dev-root.key
if [ ! -s "$work/root.pem" ]; then
    openssl ecparam -name prime256v1 -genkey -noout -out "$key"
    openssl req -x509 -new -key "$key" -sha256 -days 7300 -subj "/O=hsm-demo/CN=hsm-demo DEV offline root" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" -out "$work/root.pem"
fi
ext=$(mktemp)
trap 'rm -f "$ext"' EXIT
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:1" "keyUsage=critical,keyCertSign,cRLSign" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid:always" >"$ext"
openssl x509 -req -in "$work/intermediate.csr" -CA "$work/root.pem" -CAkey "$key" -CAcreateserial \
    -sha256 -days 3650 -extfile "$ext" -out "$work/intermediate.pem.tmp" 2>/dev/null
mv "$work/intermediate.pem.tmp" "$work/intermediate.pem"
