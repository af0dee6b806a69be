#!/usr/bin/env python3
"""Writes N device CSRs and a provisioning manifest with a `csr` column (device-generated keys).

  make-fleet-csrs.py N PREFIX DIR [TEMPLATE]

In DIR: `csr/PREFIX-<i:06>.csr` (PEM, a fresh EC P-256 key each, signed by it: the proof of
possession a device or a contract manufacturer hands over) and `manifest.csv` (device_id, cn,
san_dns, san_uri, template, csr — the same subjects as make-manifest.py, the CSR path relative to
DIR). The private keys are not kept: nothing in the benchmark needs them.

One Python process with `cryptography` (the project venv): about 10,000 CSRs in a few seconds,
where one openssl process per device would take minutes. Prints `csrs=N seconds=S`.
"""
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main() -> None:
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: make-fleet-csrs.py N PREFIX DIR [TEMPLATE]")
    n, prefix, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    template = sys.argv[4] if len(sys.argv) == 5 else "client"
    os.makedirs(os.path.join(out, "csr"), exist_ok=True)
    t0 = time.monotonic()
    with open(os.path.join(out, "manifest.csv"), "w") as m:
        m.write("device_id,cn,san_dns,san_uri,template,csr\n")
        for i in range(n):
            d = f"{prefix}-{i:06d}"
            dns, uri = f"{d}.devices.example.org", f"spiffe://example.org/device/{d}"
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, d)]))
                .add_extension(
                    x509.SubjectAlternativeName(
                        [x509.DNSName(dns), x509.UniformResourceIdentifier(uri)]
                    ),
                    critical=False,
                )
                .sign(key, hashes.SHA256())
            )
            rel = f"csr/{d}.csr"
            with open(os.path.join(out, rel), "wb") as f:
                f.write(csr.public_bytes(serialization.Encoding.PEM))
            m.write(f"{d},{d},{dns},{uri},{template},{rel}\n")
    print(f"csrs={n} seconds={time.monotonic() - t0:.2f}")


if __name__ == "__main__":
    main()
