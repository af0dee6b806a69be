#!/usr/bin/env python3
"""Writes a provisioning manifest (CSV, the header of `hsm-demo provision --manifest`) to stdout.

  make-manifest.py N PREFIX [TEMPLATE]

Device i: id PREFIX-<i:06>, CN = the id, one DNS SAN, one SPIFFE URI SAN, template client.
Streams: a 10,000-device manifest costs no memory here either.
"""
import sys


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: make-manifest.py N PREFIX [TEMPLATE]")
    n, prefix = int(sys.argv[1]), sys.argv[2]
    template = sys.argv[3] if len(sys.argv) == 4 else "client"
    out = sys.stdout
    out.write("device_id,cn,san_dns,san_uri,template\n")
    for i in range(n):
        d = f"{prefix}-{i:06d}"
        out.write(f"{d},{d},{d}.devices.example.org,spiffe://example.org/device/{d},{template}\n")


if __name__ == "__main__":
    main()
