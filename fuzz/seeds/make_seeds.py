"""Writes the seed corpora (fuzz/seeds/<target>/): a few valid inputs per parser, taken from the
tests and docs. Run with the project venv (it needs `cryptography`): .venv/bin/python
fuzz/seeds/make_seeds.py. The CSR and transcript seeds use fixed keys, so reruns differ only in
ECDSA nonces."""
import datetime
import hashlib
import json
import os
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


for t in os.listdir(HERE):
    if os.path.isdir(os.path.join(HERE, t)):
        shutil.rmtree(os.path.join(HERE, t))

for i, u in enumerate([
    "pkcs11:token=demo;object=service-key;id=%01%02;type=private",
    "pkcs11:token=other;object=svc%20key",
    "pkcs11:object=root-ca-key;type=private",
    "pkcs11:id=%01%02%ff",
    "pkcs11:serial=0123;model=SoftHSM%20v2?module-path=/usr/lib/softhsm/libsofthsm2.so",
    "pkcs11:object=k?pin-value=123456",
]):
    put("uri", f"seed-{i}", u)

for i, m in enumerate([
    "device_id,cn,san_dns,san_uri,template\n"
    "dev-0001,dev-0001,d1.example.org;d1b.example.org,spiffe://example.org/device/0001,client\n"
    '"dev-0002","Device ""two""",,,server\n',
    "# devices\ndevice_id\nd-1\nd-2\n\n",
    "device_id,template\nd-1,client\nd-2,plain\n",
]):
    put("manifest_csv", f"seed-{i}", m)

for i, m in enumerate([
    '{"device_id":"dev-0001","cn":"dev-0001","san_dns":["d1.example.org"],'
    '"san_uri":["spiffe://example.org/device/0001"],"template":"client"}\n'
    '{"device_id":"dev-0002","cn":null,"template":null}\n',
    '# c\n{"device_id":"d-1"}\n\n{"device_id":"d-2","san_dns":[]}\n',
]):
    put("manifest_jsonl", f"seed-{i}", m)

put("ceremony_config", "seed-0", """
operators = ["alice", "bob"]

[key]
label = "corp-root"
curve = "p384"

[subject]
common_name = "Example Root CA"
organization = "Example Ltd"
organizational_unit = "PKI"
country = "DE"

[certificate]
validity = "25y"
path_len = 2

[output]
dir = "out"
root_cert = "corp-root.pem"
transcript = "corp-root.jsonl"
""")
put("ceremony_config", "seed-1", 'operators = ["a", "b"]\n[key]\nlabel = "r"\ncurve = "p256"\n'
    '[subject]\ncommon_name = "R"\n[certificate]\nvalidity = "3650d"\n')

# A transcript sealed by the P-256 private scalar 1 (the key the transcript target checks with).
SEAL_DOMAIN = "hsm-demo ceremony transcript seal v1"
k1 = ec.derive_private_key(1, ec.SECP256R1())


def line(e):
    return json.dumps(e, separators=(",", ":"))


lines, prev = [], "0" * 64
for seq, (step, details) in enumerate([
    ("ceremony-start", {"operators": ["alice", "bob"], "token": "root"}),
    ("key-generated", {"label": "corp-root", "curve": "p256"}),
    ("root-certificate", {"certificate_pem": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                          "sha256": "00" * 32}),
]):
    e = {"seq": seq, "time": "2026-12-07T04:00:0%dZ" % seq, "step": step, "details": details,
         "prev": prev}
    lines.append(line(e))
    prev = hashlib.sha256(lines[-1].encode()).hexdigest()
seq, t, alg = len(lines), "2026-12-07T04:00:09Z", "ecdsa-with-SHA256"
msg = f"{SEAL_DOMAIN}\nseq={seq}\ntime={t}\nprev={prev}\nkey=corp-root\nalgorithm={alg}\n".encode()
sig = k1.sign(msg, ec.ECDSA(hashes.SHA256()))
lines.append(line({"seq": seq, "time": t, "step": "seal",
                   "details": {"key": "corp-root", "algorithm": alg, "signature": sig.hex()},
                   "prev": prev}))
put("transcript", "seed-sealed", "\n".join(lines) + "\n")
put("transcript", "seed-unsealed", "\n".join(lines[:2]) + "\n")
put("transcript", "seed-head", hashlib.sha256(b"x").hexdigest().upper())


def csr(key, algo, cn="device-1", sans=("d1.example.org",)):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    return b.sign(key, algo)


p256 = ec.derive_private_key(2, ec.SECP256R1())
p384 = ec.derive_private_key(3, ec.SECP384R1())
rsa2048 = rsa.generate_private_key(65537, 2048)
c1 = csr(p256, hashes.SHA256())
c2 = csr(p384, hashes.SHA384(), cn="Example Issuing CA", sans=())
c3 = csr(rsa2048, hashes.SHA256(), sans=("a.example.org", "b.example.org"))
put("csr", "seed-p256.pem", c1.public_bytes(serialization.Encoding.PEM))
put("csr", "seed-p256.der", c1.public_bytes(serialization.Encoding.DER))
put("csr", "seed-rsa.pem", c3.public_bytes(serialization.Encoding.PEM))
now = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(c2.subject).issuer_name(c2.subject)
        .public_key(p384.public_key()).serial_number(0x3fa2).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(p384, hashes.SHA384()))
put("csr", "seed-cert.pem", cert.public_bytes(serialization.Encoding.PEM))
put("ceremony_csr", "seed-p384.pem", c2.public_bytes(serialization.Encoding.PEM))
put("ceremony_csr", "seed-rsa.pem", c3.public_bytes(serialization.Encoding.PEM))
put("ceremony_csr", "seed-cert.pem", cert.public_bytes(serialization.Encoding.PEM))

for i, d in enumerate(["30d", "12h", "1y", "6mo", "2w", "120min", "20 years", "3650d", "30m"]):
    put("duration", f"seed-{i}", d)

for i, s in enumerate([
    "3f:a2:00:01", "0x00FF", "4C1F", "0",
    "arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/"
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "dev-0001", "sensor_42.a",
]):
    put("ids", f"seed-{i}", s)

der_sig = k1.sign(b"hsm-demo fuzz message", ec.ECDSA(hashes.SHA256()))
r, s = utils.decode_dss_signature(der_sig)
for i, h in enumerate([der_sig.hex(), "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex().upper(),
                       "0102ff"]):
    put("hex", f"seed-{i}", h)
put("hex", "seed-der", der_sig)
put("hex", "seed-pubkey", k1.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
