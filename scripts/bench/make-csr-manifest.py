#!/usr/bin/env python3
"""Writes a manifest of N devices with device-generated keys (a `csr` column) and their CSRs.

  make-csr-manifest.py N PREFIX DIR       (run with the project venv's python: `cryptography`)

Device i: id PREFIX-<i:06>, CN = the id, no SAN, template client, its CSR (a fresh EC P-256 key,
thrown away) in DIR/csr/<id>.pem; the manifest is DIR/fleet.csv. No HSM key is made for such a
device, so a run measures the AWS half alone.
"""
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: make-csr-manifest.py N PREFIX DIR")
    n, prefix, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(os.path.join(d, "csr"), exist_ok=True)
    key = None
    with open(os.path.join(d, "fleet.csv"), "w") as m:
        m.write("device_id,cn,template,csr\n")
        for i in range(n):
            dev = f"{prefix}-{i:06d}"
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, dev)])
            csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
            with open(os.path.join(d, "csr", f"{dev}.pem"), "wb") as f:
                f.write(csr.public_bytes(serialization.Encoding.PEM))
            m.write(f"{dev},{dev},client,csr/{dev}.pem\n")


if __name__ == "__main__":
    main()
