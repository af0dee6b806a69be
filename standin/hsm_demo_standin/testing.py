"""Helpers for tests and scripts: start a stand-in, make CSRs, build a CA hierarchy over the API.

`python -m hsm_demo_standin.testing hierarchy --endpoint URL` prints the ARNs of a fresh
root -> PathLen1 -> PathLen0 hierarchy (EC_prime256v1) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEMPLATE = "arn:aws:acm-pca:::template/"
STANDIN_DIR = Path(__file__).resolve().parent.parent


def wait_ready(url: str, deadline_s: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll GET {url}/moto-api/ until it answers 200, with a bounded deadline."""
    end = time.monotonic() + deadline_s
    delay = 0.02
    last: Exception | None = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"stand-in exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = e
        time.sleep(delay)  # back-off between polls, not synchronisation
        delay = min(delay * 2, 0.2)
    raise TimeoutError(f"stand-in at {url} did not answer within {deadline_s}s ({last})")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[Any]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(extra_env: dict[str, str] | None = None, stock: bool = False) -> Server:
    """Start a stand-in on a free port, bound to this process's life (--parent-pid).

    With stock=True, start moto's own `moto_server` instead (to show the gaps the plugin fills).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STANDIN_DIR), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    if stock:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
    else:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "hsm_demo_standin", "--host", "127.0.0.1", "--port", "0",
                "--parent-pid", str(os.getpid()), "--quiet",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "… listening on http://127.0.0.1:PORT"
        if "listening on " not in line:
            proc.kill()
            raise RuntimeError(f"stand-in did not start: {line!r}")
        url = line.rsplit("listening on ", 1)[1].strip()
    wait_ready(url, proc=proc)
    return Server(url, proc)


def client(endpoint: str, service: str = "acm-pca", access_key: str = "test") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )


def control(endpoint: str, body: dict[str, Any] | None = None, path: str = "/_standin/config") -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stats(endpoint: str, ca_arn: str | None = None) -> dict[str, Any]:
    """`GET /_standin/stats` (per-CA call counters), or only `ca_arn`'s counters."""
    import urllib.parse

    query = "" if ca_arn is None else "?" + urllib.parse.urlencode({"ca_arn": ca_arn})
    out = control(endpoint, path="/_standin/stats" + query)
    return out["certificate_authorities"][ca_arn] if ca_arn is not None else out


def calls(endpoint: str, access_key_id: str) -> dict[str, Any]:
    """`GET /_standin/calls?access_key_id=…`: {"total": n, "operations": {op: n}} of that key."""
    import urllib.parse

    query = "?" + urllib.parse.urlencode({"access_key_id": access_key_id})
    return control(endpoint, path="/_standin/calls" + query)["access_keys"][access_key_id]


def make_csr(
    cn: str | None = "device",
    sans: list[str] | None = None,
    key: Any = None,
) -> tuple[bytes, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)] if cn else [])
    b = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    csr = b.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key


def create_ca(
    pca: Any,
    ca_type: str,
    cn: str,
    key_alg: str = "EC_prime256v1",
    sig_alg: str = "SHA256WITHECDSA",
    revocation: dict[str, Any] | None = None,
) -> str:
    extra = {"RevocationConfiguration": revocation} if revocation else {}
    return str(
        pca.create_certificate_authority(
            CertificateAuthorityConfiguration={
                "KeyAlgorithm": key_alg,
                "SigningAlgorithm": sig_alg,
                "Subject": {"CommonName": cn, "Organization": "hsm-demo test"},
            },
            CertificateAuthorityType=ca_type,
            **extra,
        )["CertificateAuthorityArn"]
    )


def issue_and_get(
    pca: Any,
    ca_arn: str,
    csr: bytes | str,
    template: str = "EndEntityCertificate/V1",
    validity: dict[str, Any] | None = None,
    sig_alg: str = "SHA256WITHECDSA",
    **extra: Any,
) -> dict[str, Any]:
    arn = pca.issue_certificate(
        CertificateAuthorityArn=ca_arn,
        Csr=csr,
        SigningAlgorithm=sig_alg,
        TemplateArn=TEMPLATE + template,
        Validity=validity or {"Type": "DAYS", "Value": 30},
        **extra,
    )["CertificateArn"]
    got = pca.get_certificate(CertificateAuthorityArn=ca_arn, CertificateArn=arn)
    return {"arn": arn, "cert": got["Certificate"], "chain": got.get("CertificateChain", "")}


def activate_root(pca: Any, cn: str, years: int = 10, **kw: Any) -> str:
    root = create_ca(pca, "ROOT", cn, **kw)
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=root)["Csr"]
    got = issue_and_get(
        pca, root, csr, "RootCACertificate/V1", {"Type": "YEARS", "Value": years},
        sig_alg=kw.get("sig_alg", "SHA256WITHECDSA"),
    )
    pca.import_certificate_authority_certificate(CertificateAuthorityArn=root, Certificate=got["cert"].encode())
    return root


def activate_subordinate(pca: Any, parent: str, cn: str, path_len: int, years: int, **kw: Any) -> str:
    sub = create_ca(pca, "SUBORDINATE", cn, **kw)
    csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=sub)["Csr"]
    got = issue_and_get(
        pca, parent, csr, f"SubordinateCACertificate_PathLen{path_len}/V1", {"Type": "YEARS", "Value": years}
    )
    pca.import_certificate_authority_certificate(
        CertificateAuthorityArn=sub, Certificate=got["cert"].encode(), CertificateChain=got["chain"].encode()
    )
    return sub


def create_active_hierarchy(pca: Any, name: str = "hsm-demo test") -> dict[str, str]:
    """root (10 y) -> PathLen1 intermediate (8 y) -> PathLen0 issuing (5 y), all EC_prime256v1, ACTIVE."""
    root = activate_root(pca, f"{name} root")
    inter = activate_subordinate(pca, root, f"{name} intermediate", 1, 8)
    issuing = activate_subordinate(pca, inter, f"{name} issuing", 0, 5)
    root_pem = pca.get_certificate_authority_certificate(CertificateAuthorityArn=root)["Certificate"]
    return {"root_arn": root, "intermediate_arn": inter, "issuing_arn": issuing, "root_pem": root_pem}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hsm_demo_standin.testing")
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hierarchy", help="create and activate root -> PathLen1 -> PathLen0 CAs")
    h.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"))
    h.add_argument("--name", default="hsm-demo test")
    args = p.parse_args(argv)
    print(json.dumps(create_active_hierarchy(client(args.endpoint), args.name)))


if __name__ == "__main__":
    main()
