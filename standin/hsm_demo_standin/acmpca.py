"""Makes moto's ACM PCA backend faithful to AWS Private CA on the points hsm-demo depends on.

Patches `moto.acmpca` in place (see `install()`):
- CA keys of the requested KeyAlgorithm, created once and cached as key objects;
- IssueCertificate honours SigningAlgorithm, Validity (DAYS/MONTHS/YEARS/ABSOLUTE/END_DATE),
  ValidityNotBefore (default: issuance time minus 60 minutes, like AWS), the templates
  (root, subordinate PathLen0..3, end-entity, client-auth, server-auth) and IdempotencyToken;
- AWS error codes: InvalidStateException (CA not ACTIVE), MalformedCSRException,
  ResourceNotFoundException (unknown certificate), InvalidArgsException, ValidationException;
- GetCertificate returns the chain up to the root; RevokeCertificate takes any hex serial form;
- optional asynchronous issuance, LimitExceededException from IssueCertificate and issuances
  ending in a failed state (GetCertificate → RequestFailedException) (switches: see config.py);
- per-CA call counters for tests (stats.py, `GET /_standin/stats`).
Error codes and messages follow botocore's acm-pca model (2017-08-22); messages are ours.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime as dt
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from moto.acmpca import models as m
from moto.acmpca import responses as r
from moto.core.exceptions import JsonRESTError
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from . import crl
from .config import SWITCHES
from .stats import STATS

# --------------------------------------------------------------------------- errors


class _Err(JsonRESTError):
    code = 400
    name = ""

    def __init__(self, message: str):
        super().__init__(self.name, message)


class InvalidArgsException(_Err):
    name = "InvalidArgsException"


class InvalidArnException(_Err):
    name = "InvalidArnException"


class InvalidRequestException(_Err):
    name = "InvalidRequestException"


class InvalidStateException(_Err):
    name = "InvalidStateException"


class LimitExceededException(_Err):
    name = "LimitExceededException"


class RequestFailedException(_Err):
    name = "RequestFailedException"


class MalformedCSRException(_Err):
    name = "MalformedCSRException"


class MalformedCertificateException(_Err):
    name = "MalformedCertificateException"


class CertificateMismatchException(_Err):
    name = "CertificateMismatchException"


class RequestAlreadyProcessedException(_Err):
    name = "RequestAlreadyProcessedException"


class RequestInProgressException(_Err):
    name = "RequestInProgressException"


class ResourceNotFoundException(_Err):
    name = "ResourceNotFoundException"


class ValidationException(_Err):
    name = "ValidationException"


# --------------------------------------------------------------------------- algorithms

KEY_ALGORITHMS: dict[str, tuple[str, Any]] = {
    "RSA_2048": ("RSA", 2048),
    "RSA_3072": ("RSA", 3072),
    "RSA_4096": ("RSA", 4096),
    "EC_prime256v1": ("EC", ec.SECP256R1),
    "EC_secp384r1": ("EC", ec.SECP384R1),
    "EC_secp521r1": ("EC", ec.SECP521R1),
}

# name -> (key family, hash, RSA padding kind)
SIGNING_ALGORITHMS: dict[str, tuple[str, type[hashes.HashAlgorithm], str | None]] = {
    "SHA256WITHECDSA": ("EC", hashes.SHA256, None),
    "SHA384WITHECDSA": ("EC", hashes.SHA384, None),
    "SHA512WITHECDSA": ("EC", hashes.SHA512, None),
    "SHA256WITHRSA": ("RSA", hashes.SHA256, "pkcs1"),
    "SHA384WITHRSA": ("RSA", hashes.SHA384, "pkcs1"),
    "SHA512WITHRSA": ("RSA", hashes.SHA512, "pkcs1"),
    "SHA256WITHRSA_PSS": ("RSA", hashes.SHA256, "pss"),
    "SHA384WITHRSA_PSS": ("RSA", hashes.SHA384, "pss"),
    "SHA512WITHRSA_PSS": ("RSA", hashes.SHA512, "pss"),
}


def _family(key: Any) -> str:
    return "EC" if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) else "RSA"


def _signing(alg: str | None, key: Any) -> tuple[hashes.HashAlgorithm, Any]:
    """The hash and RSA padding for `alg`, checked against the CA key's family."""
    if alg not in SIGNING_ALGORITHMS:
        raise InvalidArgsException(
            f"Signing algorithm {alg} is not supported by this stand-in "
            f"(supported: {', '.join(SIGNING_ALGORITHMS)})."
        )
    fam, h, pad = SIGNING_ALGORITHMS[alg]
    if fam != _family(key):
        raise InvalidArgsException(
            f"The signing algorithm {alg} is not compatible with the private CA's key algorithm."
        )
    hash_alg = h()
    if pad == "pss":
        return hash_alg, padding.PSS(mgf=padding.MGF1(h()), salt_length=padding.PSS.DIGEST_LENGTH)
    if pad == "pkcs1":
        return hash_alg, padding.PKCS1v15()
    return hash_alg, None


def _new_key(key_algorithm: str | None) -> Any:
    if key_algorithm not in KEY_ALGORITHMS:
        raise InvalidArgsException(
            f"Key algorithm {key_algorithm} is not supported by this stand-in "
            f"(supported: {', '.join(KEY_ALGORITHMS)})."
        )
    fam, param = KEY_ALGORITHMS[key_algorithm]
    if fam == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=param)
    return ec.generate_private_key(param())


def _same_key(a: Any, b: Any) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return bool(a.public_bytes(enc, fmt) == b.public_bytes(enc, fmt))


# --------------------------------------------------------------------------- names, ARNs

_SUBJECT_OIDS = [
    ("Country", NameOID.COUNTRY_NAME),
    ("State", NameOID.STATE_OR_PROVINCE_NAME),
    ("Locality", NameOID.LOCALITY_NAME),
    ("Organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("DistinguishedNameQualifier", NameOID.DN_QUALIFIER),
    ("SerialNumber", NameOID.SERIAL_NUMBER),
    ("Title", NameOID.TITLE),
    ("Surname", NameOID.SURNAME),
    ("GivenName", NameOID.GIVEN_NAME),
    ("Initials", NameOID.INITIALS),
    ("Pseudonym", NameOID.PSEUDONYM),
    ("GenerationQualifier", NameOID.GENERATION_QUALIFIER),
    ("CommonName", NameOID.COMMON_NAME),
]


def subject_to_name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs = [x509.NameAttribute(oid, str(subject[k])) for k, oid in _SUBJECT_OIDS if subject.get(k)]
    for custom in subject.get("CustomAttributes") or []:
        attrs.append(
            x509.NameAttribute(x509.ObjectIdentifier(custom["ObjectIdentifier"]), custom["Value"])
        )
    return x509.Name(attrs)


_CA_ARN = re.compile(r"^arn:[\w+=/,.@-]+:acm-pca:[\w+=/,.@-]*:[0-9]*:certificate-authority/[\w+=,.@-]+$")
_CERT_ARN = re.compile(r"^(arn:[^/]+:certificate-authority/[\w+=,.@-]+)/certificate/([0-9a-fA-F]+)$")

TEMPLATE_PREFIX_RE = re.compile(r"^arn:[\w-]+:acm-pca:::template/(?P<name>[A-Za-z0-9_]+)/V(?P<v>\d+)$")


def check_ca_arn(arn: str | None) -> str:
    if not arn or not _CA_ARN.match(arn):
        raise InvalidArnException(f"The ARN {arn} is not a valid certificate authority ARN.")
    return arn


# --------------------------------------------------------------------------- validity


def _add_months(t: dt.datetime, months: int) -> dt.datetime:
    y, mo = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, mo + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)


def _absolute(spec: dict[str, Any], what: str) -> dt.datetime:
    kind, value = spec.get("Type"), spec.get("Value")
    if not isinstance(value, int) or value < 1:
        raise ValidationException(f"{what}.Value must be a positive integer.")
    if kind == "ABSOLUTE":
        try:
            return dt.datetime.fromtimestamp(value, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValidationException(f"{what}.Value {value} is out of range.") from None
    if kind == "END_DATE":
        s = str(value)
        try:
            if len(s) <= 12:
                s = s.zfill(12)
                yy = int(s[:2])
                year = 1900 + yy if yy >= 50 else 2000 + yy
                rest = s[2:]
            elif len(s) == 14:
                year, rest = int(s[:4]), s[4:]
            else:
                raise ValueError
            return dt.datetime(
                year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10]),
                tzinfo=dt.timezone.utc,
            )
        except ValueError:
            raise ValidationException(
                f"{what}.Value {value} is not a valid UTCTime (YYMMDDHHMMSS) or GeneralizedTime "
                "(YYYYMMDDHHMMSS) date."
            ) from None
    raise ValidationException(f"{what}.Type {kind} is not valid here.")


def compute_validity(
    validity: dict[str, Any] | None,
    not_before: dict[str, Any] | None,
    now: dt.datetime,
) -> tuple[dt.datetime, dt.datetime]:
    if not validity:
        raise ValidationException("Validity is required.")
    kind, value = validity.get("Type"), validity.get("Value")
    if kind in ("DAYS", "MONTHS", "YEARS"):
        if not isinstance(value, int) or value < 1:
            raise ValidationException("Validity.Value must be a positive integer.")
        try:
            if kind == "DAYS":
                end = now + dt.timedelta(days=value)
            elif kind == "MONTHS":
                end = _add_months(now, value)
            else:
                end = _add_months(now, 12 * value)
        except (OverflowError, ValueError):
            raise ValidationException(f"Validity.Value {value} is out of range.") from None
    elif kind in ("ABSOLUTE", "END_DATE"):
        end = _absolute(validity, "Validity")
    else:
        raise ValidationException(
            f"Validity.Type {kind} is not one of END_DATE, ABSOLUTE, DAYS, MONTHS, YEARS."
        )
    if not_before:
        if not_before.get("Type") not in ("ABSOLUTE", "END_DATE"):
            raise ValidationException("ValidityNotBefore.Type must be ABSOLUTE.")
        start = _absolute(not_before, "ValidityNotBefore")
    else:
        start = now - dt.timedelta(minutes=60)
    if end <= now:
        raise ValidationException("The certificate validity specified is in the past.")
    if start >= end:
        raise ValidationException("ValidityNotBefore must be before the end of the validity period.")
    return start, end


# --------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class Template:
    name: str
    ca: bool
    path_len: int | None = None
    key_usage: tuple[str, ...] = ()
    eku: tuple[x509.ObjectIdentifier, ...] = ()
    csr_passthrough: bool = False
    api_passthrough: bool = False


_CA_KU = ("digital_signature", "key_cert_sign", "crl_sign")
_SA = x509.ExtendedKeyUsageOID.SERVER_AUTH
_CA_ = x509.ExtendedKeyUsageOID.CLIENT_AUTH

_BASE_TEMPLATES: dict[str, Template] = {
    "RootCACertificate": Template("RootCACertificate", ca=True, key_usage=_CA_KU),
    **{
        f"SubordinateCACertificate_PathLen{n}": Template(
            f"SubordinateCACertificate_PathLen{n}", ca=True, path_len=n, key_usage=_CA_KU
        )
        for n in range(4)
    },
    "EndEntityCertificate": Template(
        "EndEntityCertificate", ca=False, key_usage=("digital_signature", "key_encipherment"), eku=(_SA, _CA_)
    ),
    "EndEntityClientAuthCertificate": Template(
        "EndEntityClientAuthCertificate",
        ca=False,
        key_usage=("digital_signature", "key_encipherment"),
        eku=(_CA_,),
    ),
    "EndEntityServerAuthCertificate": Template(
        "EndEntityServerAuthCertificate",
        ca=False,
        key_usage=("digital_signature", "key_encipherment"),
        eku=(_SA,),
    ),
}

DEFAULT_TEMPLATE = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"


def template_of(arn: str | None) -> Template:
    arn = arn or DEFAULT_TEMPLATE
    match = TEMPLATE_PREFIX_RE.match(arn)
    if match:
        name = match.group("name")
        csr_pt = api_pt = False
        for suffix, flags in (
            ("_APICSRPassthrough", (True, True)),
            ("_APIPassthrough", (False, True)),
            ("_CSRPassthrough", (True, False)),
        ):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                csr_pt, api_pt = flags
                break
        base = _BASE_TEMPLATES.get(name)
        if base is not None and (match.group("v") == "1" or csr_pt or api_pt):
            return Template(
                base.name, base.ca, base.path_len, base.key_usage, base.eku, csr_pt, api_pt
            )
    raise InvalidArgsException(f"The template {arn} is not a supported certificate template.")


def _key_usage(names: tuple[str, ...]) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    for n in names:
        flags[n] = True
    return x509.KeyUsage(**flags)


def _general_name(g: dict[str, Any]) -> x509.GeneralName:
    """ApiPassthrough GeneralName (DnsName, IpAddress, Rfc822Name, UniformResourceIdentifier)."""
    import ipaddress

    if g.get("DnsName"):
        return x509.DNSName(g["DnsName"])
    if g.get("IpAddress"):
        return x509.IPAddress(ipaddress.ip_address(g["IpAddress"]))
    if g.get("Rfc822Name"):
        return x509.RFC822Name(g["Rfc822Name"])
    if g.get("UniformResourceIdentifier"):
        return x509.UniformResourceIdentifier(g["UniformResourceIdentifier"])
    raise InvalidArgsException(f"GeneralName {sorted(g)} is not supported by this stand-in.")


# --------------------------------------------------------------------------- the CA model


@dataclass
class IssuedCertificate:
    arn: str
    serial: int
    pem: bytes
    chain: bytes
    get_calls: int = 0
    revoked: dict[str, Any] | None = None
    failed: bool = False  # the request ended in a failed state: no certificate exists
    extra: dict[str, Any] = field(default_factory=dict)


def _serial() -> int:
    # 16 random bytes like AWS's serials, kept positive and 32 hex digits long.
    return (int.from_bytes(os.urandom(16), "big") >> 1) | (1 << 126)


def normalize_serial(text: str | None) -> int:
    """RevokeCertificate's CertificateSerial: hex, with or without colons, any case."""
    raw = (text or "").strip().replace(":", "")
    if raw.lower().startswith("0x"):
        raw = raw[2:]
    if not raw or not re.fullmatch(r"[0-9a-fA-F]+", raw):
        raise InvalidRequestException(
            f"The certificate serial {text!r} is not a hexadecimal serial number."
        )
    return int(raw, 16)


class StandinCertificateAuthority(m.CertificateAuthority):
    """moto's CertificateAuthority with a real key of the requested algorithm, cached."""

    def __init__(
        self,
        region: str,
        account_id: str,
        certificate_authority_configuration: dict[str, Any],
        certificate_authority_type: str,
        revocation_configuration: dict[str, Any],
        security_standard: str | None,
    ):
        # Deliberately not calling moto's __init__: it generates an RSA-2048 key whatever
        # KeyAlgorithm says. Same attributes, our key.
        config = certificate_authority_configuration or {}
        if certificate_authority_type not in ("ROOT", "SUBORDINATE"):
            raise InvalidArgsException(
                f"CertificateAuthorityType {certificate_authority_type} is not ROOT or SUBORDINATE."
            )
        self._key = _new_key(config.get("KeyAlgorithm"))
        _signing(config.get("SigningAlgorithm"), self._key)  # validates the pair
        self.id = mock_random.uuid4()
        self.arn = f"arn:{get_partition(region)}:acm-pca:{region}:{account_id}:certificate-authority/{self.id}"
        self.account_id = account_id
        self.region_name = region
        self.certificate_authority_configuration = config
        self.certificate_authority_type = certificate_authority_type
        self.revocation_configuration = {"CrlConfiguration": {"Enabled": False}}
        self.set_revocation_configuration(revocation_configuration)
        self.created_at = unix_time()
        self.updated_at: float | None = None
        self.status = "PENDING_CERTIFICATE"
        self.usage_mode = "GENERAL_PURPOSE"
        self.security_standard = security_standard or "FIPS_140_2_LEVEL_3_OR_HIGHER"
        self.policy: str | None = None
        self.revoked_certificates: dict[str, dict[str, Any]] = {}
        self.certificate_bytes = b""
        self.certificate_chain: bytes | None = None
        self.issued_certificates: dict[str, bytes] = {}
        self.issued_certificates_certificate_chains: dict[str, bytes] = {}
        self.subject = config.get("Subject", {})
        self._cert_obj: x509.Certificate | None = None
        self._csr_pem: bytes | None = None
        self.records: dict[str, IssuedCertificate] = {}
        self.by_serial: dict[int, IssuedCertificate] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.lock = threading.RLock()
        self.crl_number = 0  # the last CRL number published (crl.py)
        self.crl_failures = 0
        self.crl_timer: threading.Timer | None = None
        self.restorable_until: float | None = None  # DELETED CAs (lifecycle.py)
        self.status_before_deletion: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_json()
        if self.status == "DELETED" and self.restorable_until is not None:
            out["RestorableUntil"] = self.restorable_until
        return out

    # -- key and certificate, cached (stock moto reloads the PEM key on every access)
    @property
    def key(self) -> Any:
        return self._key

    @property
    def certificate(self) -> x509.Certificate | None:
        return self._cert_obj

    @property
    def issuer(self) -> x509.Name:
        if self._cert_obj is not None:
            return self._cert_obj.subject
        return subject_to_name(self.subject)

    @property
    def csr(self) -> bytes:
        with self.lock:
            if self._csr_pem is None:
                h, pad = _signing(self.certificate_authority_configuration.get("SigningAlgorithm"), self._key)
                builder = x509.CertificateSigningRequestBuilder().subject_name(subject_to_name(self.subject))
                builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                kw = {"rsa_padding": pad} if pad is not None else {}
                csr = builder.sign(self._key, h, **kw)
                self._csr_pem = csr.public_bytes(serialization.Encoding.PEM)
            return self._csr_pem

    def chain_pem(self) -> bytes:
        """This CA's certificate followed by its chain up to the root (PEM)."""
        out = self.certificate_bytes.strip() + b"\n"
        if self.certificate_chain:
            out += self.certificate_chain.strip() + b"\n"
        return out

    def import_certificate_authority_certificate(
        self, certificate: bytes, certificate_chain: bytes | None
    ) -> None:
        if self.status in ("DELETED", "FAILED", "CREATING"):
            raise InvalidStateException(
                f"The certificate authority {self.arn} is in state {self.status} and cannot import a certificate."
            )
        try:
            cert = x509.load_pem_x509_certificate(certificate)
        except ValueError:
            raise MalformedCertificateException("The certificate is not a valid PEM X.509 certificate.") from None
        chain: list[x509.Certificate] = []
        if certificate_chain:
            try:
                chain = x509.load_pem_x509_certificates(certificate_chain)
            except ValueError:
                raise MalformedCertificateException("The certificate chain is not valid PEM.") from None
        if not _same_key(cert.public_key(), self._key.public_key()):
            raise CertificateMismatchException(
                "The certificate's public key does not match the private CA's key."
            )
        try:
            cert.verify_directly_issued_by(chain[0] if chain else cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateMismatchException(
                "The certificate is not signed by the first certificate of the chain"
                if chain
                else "A certificate without a chain must be self-signed (root CA)."
            ) from None
        if self.certificate_authority_type == "SUBORDINATE" and not chain:
            raise InvalidRequestException("A subordinate CA certificate needs its CertificateChain.")
        self.certificate_bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.certificate_chain = (
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) if chain else None
        )
        self._cert_obj = cert
        self.status = "ACTIVE"
        self.updated_at = unix_time()
        crl.publish(self)

    # -- issuance
    def _extensions(
        self,
        csr: x509.CertificateSigningRequest,
        tpl: Template,
        self_issued: bool,
        api: dict[str, Any] | None = None,
    ) -> list[tuple[x509.ExtensionType, bool]]:
        pub = csr.public_key()
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=tpl.ca, path_length=tpl.path_len), True),
            (_key_usage(tpl.key_usage), True),
            (x509.SubjectKeyIdentifier.from_public_key(pub), False),  # type: ignore[arg-type]
        ]
        if tpl.eku:
            exts.append((x509.ExtendedKeyUsage(list(tpl.eku)), False))
        # AKI: the issuing CA certificate's SKI (or the key's, for a self-issued root).
        aki: x509.AuthorityKeyIdentifier | None = None
        if self._cert_obj is not None and not self_issued:
            try:
                ski = self._cert_obj.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
                aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
            except x509.ExtensionNotFound:
                pass
        if aki is None:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        exts.append((aki, False))
        crl = (self.revocation_configuration or {}).get("CrlConfiguration") or {}
        if crl.get("Enabled") and crl.get("S3BucketName"):
            host = crl.get("CustomCname") or f"{crl['S3BucketName']}.s3.{self.region_name}.amazonaws.com"
            url = f"http://{host}/crl/{self.id}.crl"
            exts.append(
                (
                    x509.CRLDistributionPoints(
                        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
                    ),
                    False,
                )
            )
        taken = {type(e) for e, _ in exts}
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            critical = san.critical or len(csr.subject) == 0
            exts.append((san.value, critical))
            taken.add(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        api_sans = ((api or {}).get("Extensions") or {}).get("SubjectAlternativeNames")
        if tpl.api_passthrough and api_sans:
            exts = [(e, c) for e, c in exts if not isinstance(e, x509.SubjectAlternativeName)]
            exts.append((x509.SubjectAlternativeName([_general_name(g) for g in api_sans]), len(csr.subject) == 0))
            taken.add(x509.SubjectAlternativeName)
        if tpl.csr_passthrough:
            for ext in csr.extensions:
                if type(ext.value) not in taken and not isinstance(ext.value, x509.UnrecognizedExtension):
                    exts.append((ext.value, ext.critical))
        return exts

    def issue(self, params: dict[str, Any], csr_pem: bytes) -> str:
        """IssueCertificate. `csr_pem` is the CSR as PEM bytes (already base64-decoded)."""
        return self.issue_with_outcome(params, csr_pem)[0]

    def issue_with_outcome(self, params: dict[str, Any], csr_pem: bytes) -> tuple[str, str]:
        """IssueCertificate → (certificate ARN, "issued" | "failed" | "idempotent_replays")."""
        tpl = template_of(params.get("TemplateArn"))
        token = params.get("IdempotencyToken")
        if token is not None and not (isinstance(token, str) and 1 <= len(token) <= 36):
            raise ValidationException("IdempotencyToken must be 1 to 36 characters long.")
        cfg = SWITCHES.get()
        with self.lock:
            now_mono = time.monotonic()
            if token is not None:
                seen = self.tokens.get(token)
                if seen is not None and now_mono - seen[1] < cfg["idempotency_window_seconds"]:
                    return seen[0], "idempotent_replays"
            self_issued = tpl.name == "RootCACertificate" and self.status == "PENDING_CERTIFICATE"
            if self.status != "ACTIVE" and not (
                self_issued and self.certificate_authority_type == "ROOT"
            ):
                raise InvalidStateException(
                    f"The certificate authority {self.arn} is not in the correct state to issue "
                    f"certificates (status {self.status})."
                )
            if cfg["issue_limit_exceeded"]:
                # Switch issue_limit_exceeded: the per-CA certificate quota (a resource count, not a rate).
                raise LimitExceededException(
                    f"The certificate authority {self.arn} has reached the maximum number of "
                    "certificates it can issue (quota: certificates per private CA)."
                )
            try:
                csr = x509.load_pem_x509_csr(csr_pem)
            except ValueError:
                raise MalformedCSRException("The certificate signing request is invalid.") from None
            if not csr.is_signature_valid:
                raise MalformedCSRException("The certificate signing request's signature is invalid.")
            try:
                csr_key = csr.public_key()
            except (ValueError, TypeError):
                raise MalformedCSRException("The certificate signing request's public key is not supported.") from None
            if not isinstance(csr_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
                raise MalformedCSRException("The certificate signing request's key algorithm is not supported.")
            if len(csr.subject) == 0:
                try:
                    csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                except x509.ExtensionNotFound:
                    raise MalformedCSRException(
                        "The certificate signing request has neither a subject nor a subject alternative name."
                    ) from None
            hash_alg, pad = _signing(params.get("SigningAlgorithm"), self._key)
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
            not_before, not_after = compute_validity(params.get("Validity"), params.get("ValidityNotBefore"), now)
            if self._cert_obj is not None and not self_issued:
                ca_after = self._cert_obj.not_valid_after_utc
                if not_after > ca_after:
                    raise ValidationException(
                        "The certificate validity specified exceeds the certificate authority validity."
                    )
            if self_issued and not _same_key(csr_key, self._key.public_key()):
                raise InvalidArgsException(
                    "A RootCACertificate issued by a pending root CA must be for the CA's own CSR."
                )
            subject = csr.subject
            api = params.get("ApiPassthrough") or {}
            if api and tpl.api_passthrough and api.get("Subject"):
                subject = subject_to_name(api["Subject"])
            serial = _serial()
            while serial in self.by_serial:
                serial = _serial()
            arn = f"{self.arn}/certificate/{serial:032x}"
            if cfg["reissue_serial"] and self.by_serial and not self_issued:
                # Switch reissue_serial: a broken CA that signs a new certificate with the serial
                # of the last one it issued (the ARN stays new, so both remain retrievable; a
                # revocation by serial finds the first).
                serial = next(reversed(self.by_serial))
            if SWITCHES.issuance_fails():
                # Switch fail_issuance: AWS accepted the request (an ARN comes back) but issuance
                # fails asynchronously; no certificate exists, GetCertificate → RequestFailed.
                self.records[arn] = IssuedCertificate(arn=arn, serial=serial, pem=b"", chain=b"", failed=True)
                if token is not None:
                    self.tokens[token] = (arn, now_mono)
                return arn, "failed"
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject if self_issued else self.issuer)
                .public_key(csr_key)
                .serial_number(serial)
                .not_valid_before(not_before)
                .not_valid_after(not_after)
            )
            for ext, critical in self._extensions(csr, tpl, self_issued, api):
                builder = builder.add_extension(ext, critical)
            kw = {"rsa_padding": pad} if pad is not None else {}
            cert = builder.sign(self._key, hash_alg, **kw)
            pem = cert.public_bytes(serialization.Encoding.PEM)
            chain = b"" if self_issued else self.chain_pem()
            rec = IssuedCertificate(arn=arn, serial=serial, pem=pem, chain=chain)
            rec.extra.update(
                not_before=not_before, not_after=not_after, issued_at=now, subject=subject,
                template_arn=params.get("TemplateArn") or DEFAULT_TEMPLATE,
            )
            self.records[arn] = rec
            self.by_serial.setdefault(serial, rec)
            self.issued_certificates[arn] = pem
            if chain:
                self.issued_certificates_certificate_chains[arn] = chain
            if token is not None:
                self.tokens[token] = (arn, now_mono)
            return arn, "issued"

    def get_issued(self, certificate_arn: str) -> IssuedCertificate:
        rec = self.records.get(certificate_arn)
        if rec is None:
            raise ResourceNotFoundException(f"Could not find certificate {certificate_arn}.")
        return rec


# --------------------------------------------------------------------------- backend methods


def _ca(backend: m.ACMPCABackend, arn: str | None) -> StandinCertificateAuthority:
    check_ca_arn(arn)
    ca = backend.certificate_authorities.get(arn)  # type: ignore[arg-type]
    if ca is None:
        raise ResourceNotFoundException(f"Could not find certificate authority {arn}.")
    return ca  # type: ignore[return-value]


def backend_issue_certificate(backend: m.ACMPCABackend, params: dict[str, Any], csr_pem: bytes) -> str:
    return _ca(backend, params.get("CertificateAuthorityArn")).issue(params, csr_pem)


def backend_issue_certificate_with_outcome(
    backend: m.ACMPCABackend, params: dict[str, Any], csr_pem: bytes
) -> tuple[str, str]:
    return _ca(backend, params.get("CertificateAuthorityArn")).issue_with_outcome(params, csr_pem)


def backend_get_certificate(
    self: m.ACMPCABackend, certificate_authority_arn: str, certificate_arn: str
) -> tuple[bytes, bytes]:
    ca = _ca(self, certificate_authority_arn)
    if not certificate_arn or not _CERT_ARN.match(certificate_arn):
        raise InvalidArnException(f"The ARN {certificate_arn} is not a valid certificate ARN.")
    rec = ca.get_issued(certificate_arn)
    pending = SWITCHES.get()["async_pending_gets"]
    with ca.lock:
        rec.get_calls += 1
        calls = rec.get_calls
    if calls <= pending:
        raise RequestInProgressException(f"The request to issue certificate {certificate_arn} is still in progress.")
    if rec.failed:
        raise RequestFailedException(f"The request to issue certificate {certificate_arn} failed.")
    return rec.pem, rec.chain


def backend_revoke_certificate(
    self: m.ACMPCABackend, certificate_authority_arn: str, certificate_serial: str, revocation_reason: str
) -> None:
    ca = _ca(self, certificate_authority_arn)
    if ca.status not in ("ACTIVE", "DISABLED"):
        raise InvalidStateException(
            f"The certificate authority {ca.arn} is in state {ca.status} and cannot revoke certificates."
        )
    serial = normalize_serial(certificate_serial)
    with ca.lock:
        rec = ca.by_serial.get(serial)
        if rec is None:
            raise ResourceNotFoundException(
                f"Could not find certificate with serial {certificate_serial} issued by {ca.arn}."
            )
        if rec.revoked is not None:
            raise RequestAlreadyProcessedException(f"The certificate {certificate_serial} is already revoked.")
        rec.revoked = {"revocation_reason": revocation_reason, "revocation_time": unix_time()}
        colon = format(serial, "X")
        if len(colon) % 2:
            colon = "0" + colon
        ca.revoked_certificates[":".join(colon[i : i + 2] for i in range(0, len(colon), 2))] = rec.revoked
    crl.after_revocation(ca, SWITCHES.get()["crl_delay_seconds"])


def backend_describe(self: m.ACMPCABackend, certificate_authority_arn: str) -> m.CertificateAuthority:
    return _ca(self, certificate_authority_arn)


def backend_get_ca_csr(self: m.ACMPCABackend, certificate_authority_arn: str) -> bytes:
    ca = _ca(self, certificate_authority_arn)
    if ca.status in ("DELETED", "FAILED", "CREATING"):
        raise InvalidStateException(f"The certificate authority {ca.arn} is in state {ca.status}.")
    return ca.csr


def backend_get_ca_certificate(
    self: m.ACMPCABackend, certificate_authority_arn: str
) -> tuple[bytes, bytes | None]:
    ca = _ca(self, certificate_authority_arn)
    if not ca.certificate_bytes or ca.status in ("PENDING_CERTIFICATE", "DELETED", "FAILED", "CREATING"):
        raise InvalidStateException(f"The certificate authority {ca.arn} has no certificate (status {ca.status}).")
    return ca.certificate_bytes, ca.certificate_chain


def backend_update_ca(
    self: m.ACMPCABackend,
    certificate_authority_arn: str,
    revocation_configuration: dict[str, Any],
    status: str,
) -> None:
    ca = _ca(self, certificate_authority_arn)
    was = (ca.status, crl.config_of(ca))
    if status is not None:
        if status not in ("ACTIVE", "DISABLED"):
            raise InvalidArgsException(f"Status {status} is not ACTIVE or DISABLED.")
        if ca.status not in ("ACTIVE", "DISABLED"):
            raise InvalidStateException(
                f"The certificate authority {ca.arn} is in state {ca.status}; only ACTIVE and DISABLED "
                "CAs can change status."
            )
        ca.status = status
    ca.set_revocation_configuration(revocation_configuration)
    ca.updated_at = unix_time()
    if ca.status == "ACTIVE" and (ca.status, crl.config_of(ca)) != was:
        crl.publish(ca)  # activated, or CRLs enabled or reconfigured


# --------------------------------------------------------------------------- responses


def _b64_or_text(value: Any) -> bytes:
    """Blobs arrive base64-encoded in the JSON protocol."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value.encode()


def _counted(operation: str, ca_arn: Any, call: Any) -> Any:
    """Runs `call()` and counts it in STATS (outcome for IssueCertificate, error codes for all)."""
    try:
        result = call()
    except JsonRESTError as e:
        STATS.record(ca_arn, operation, error=e.error_type)
        raise
    except Exception:
        STATS.record(ca_arn, operation, error="InternalFailure")
        raise
    if operation == "IssueCertificate":
        arn, outcome = result
        STATS.record(ca_arn, operation, outcome=outcome)
        return arn
    STATS.record(ca_arn, operation)
    return result


def response_issue_certificate(self: r.ACMPCAResponse) -> str:
    params = json.loads(self.body)
    arn = _counted(
        "IssueCertificate", params.get("CertificateAuthorityArn"), lambda: _issue_response(self, params)
    )
    return json.dumps({"CertificateArn": arn})


def _issue_response(self: r.ACMPCAResponse, params: dict[str, Any]) -> tuple[str, str]:
    for required in ("CertificateAuthorityArn", "Csr", "SigningAlgorithm", "Validity"):
        if params.get(required) in (None, ""):
            raise ValidationException(f"1 validation error detected: Value null at '{required}' failed to satisfy constraint: Member must not be null")
    try:
        csr_pem = base64.b64decode(params["Csr"], validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCSRException("The certificate signing request is not base64-encoded PEM.") from None
    return backend_issue_certificate_with_outcome(self.acmpca_backend, params, csr_pem)


def response_get_certificate(self: r.ACMPCAResponse) -> str:
    params = json.loads(self.body)
    pem, chain = _counted(
        "GetCertificate",
        params.get("CertificateAuthorityArn"),
        lambda: self.acmpca_backend.get_certificate(
            certificate_authority_arn=params.get("CertificateAuthorityArn"),
            certificate_arn=params.get("CertificateArn"),
        ),
    )
    out = {"Certificate": pem.decode().strip()}
    if chain:
        out["CertificateChain"] = chain.decode().strip()
    return json.dumps(out)


def response_import_ca_certificate(self: r.ACMPCAResponse) -> str:
    params = json.loads(self.body)
    if not params.get("Certificate"):
        raise ValidationException("Certificate is required.")
    self.acmpca_backend.import_certificate_authority_certificate(
        certificate_authority_arn=params.get("CertificateAuthorityArn"),
        certificate=_b64_or_text(params.get("Certificate")),
        certificate_chain=_b64_or_text(params.get("CertificateChain")) or None,
    )
    return "{}"


def response_get_ca_certificate(self: r.ACMPCAResponse) -> str:
    params = json.loads(self.body)
    cert, chain = self.acmpca_backend.get_certificate_authority_certificate(
        certificate_authority_arn=params.get("CertificateAuthorityArn")
    )
    out = {"Certificate": cert.decode().strip()}
    if chain:
        out["CertificateChain"] = chain.decode().strip()
    return json.dumps(out)


def install() -> None:
    m.CertificateAuthority = StandinCertificateAuthority  # type: ignore[misc]
    B = m.ACMPCABackend
    B.describe_certificate_authority = backend_describe  # type: ignore[method-assign,assignment]
    B.get_certificate = backend_get_certificate  # type: ignore[method-assign]
    B.revoke_certificate = backend_revoke_certificate  # type: ignore[method-assign]
    B.get_certificate_authority_csr = backend_get_ca_csr  # type: ignore[method-assign]
    B.get_certificate_authority_certificate = backend_get_ca_certificate  # type: ignore[method-assign]
    B.update_certificate_authority = backend_update_ca  # type: ignore[method-assign]
    R = r.ACMPCAResponse
    R.issue_certificate = response_issue_certificate  # type: ignore[method-assign]
    R.get_certificate = response_get_certificate  # type: ignore[method-assign]
    R.import_certificate_authority_certificate = response_import_ca_certificate  # type: ignore[method-assign]
    R.get_certificate_authority_certificate = response_get_ca_certificate  # type: ignore[method-assign]
