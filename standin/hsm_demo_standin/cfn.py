"""CloudFormation resource types moto lacks, backed by moto's own ACM PCA and S3 backends.

AWS::ACMPCA::CertificateAuthority      Ref/Arn, GetAtt Arn, CertificateSigningRequest
AWS::ACMPCA::Certificate               Ref/Arn, GetAtt Arn, Certificate
AWS::ACMPCA::CertificateAuthorityActivation  Ref = CA ARN, GetAtt CompleteCertificateChain;
                                       imports Certificate (+ CertificateChain) and activates the CA
AWS::S3::BucketPolicy                  puts/replaces/deletes the bucket's policy

moto finds CloudFormation types through `CloudFormationModel.__subclasses__()` (direct subclasses
only), cached on first use: importing this module before the first stack call is enough.
"""

from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Self

from moto.core.common_models import CloudFormationModel

from . import acmpca

_CA_UPDATABLE = {"RevocationConfiguration", "Tags"}


def _pca(account_id: str, region_name: str) -> Any:
    from moto.acmpca.models import acmpca_backends

    return acmpca_backends[account_id][region_name]


class _Resource:
    """What the four types share. A mixin rather than a CloudFormationModel subclass: moto registers
    only *direct* subclasses, so each type lists CloudFormationModel itself, after this class."""

    CFN_TYPE: ClassVar[str]
    # Fn::GetAtt name -> its value for an instance; anything else fails template validation.
    CFN_ATTRS: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __init__(self, physical_id: str, account_id: str, region_name: str, props: dict[str, Any]):
        self.physical_id = physical_id  # what Ref returns
        self.account_id = account_id
        self.region_name = region_name
        self.props = props

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.CFN_ATTRS

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    def get_cfn_attribute(self, attr: str) -> Any:
        if attr not in self.CFN_ATTRS:
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            raise UnformattedGetAttTemplateException()
        return self.CFN_ATTRS[attr](self)

    def _ca(self, ca_arn: str) -> Any:
        return _pca(self.account_id, self.region_name).describe_certificate_authority(ca_arn)

    # Each type's own semantics; moto's entry points below hand them the resource's Properties (`p`).
    @classmethod
    def _create(cls, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        """Make the resource in the backend; `name` is the generated resource name."""
        raise NotImplementedError

    @classmethod
    def _update(cls, res: Self, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        """Update `res` in place or replace it; return the resource that stays."""
        raise NotImplementedError

    @classmethod
    def _remove(cls, physical_id: str, props: dict[str, Any], account_id: str, region_name: str) -> None:
        """Undo the resource in the backend; the default has nothing to undo."""

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        return cls._create(resource_name, cloudformation_json.get("Properties", {}), account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        p = cloudformation_json.get("Properties", {})
        return cls._update(original_resource, new_resource_name, p, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        cls._remove(resource_name, cloudformation_json.get("Properties", {}), account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        self._remove(self.physical_id, self.props, account_id, region_name)

    def is_created(self) -> bool:
        return True


class PcaCertificateAuthority(_Resource, CloudFormationModel):
    CFN_TYPE = "AWS::ACMPCA::CertificateAuthority"
    CFN_ATTRS = {
        "Arn": lambda r: r.physical_id,
        "CertificateSigningRequest": lambda r: r._ca(r.physical_id).csr.decode().strip(),
    }

    @classmethod
    def _create(cls, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        config = {
            "KeyAlgorithm": p.get("KeyAlgorithm"),
            "SigningAlgorithm": p.get("SigningAlgorithm"),
            "Subject": p.get("Subject", {}),
        }
        if p.get("CsrExtensions"):
            config["CsrExtensions"] = p["CsrExtensions"]
        arn = _pca(account_id, region_name).create_certificate_authority(
            certificate_authority_configuration=config,
            revocation_configuration=p.get("RevocationConfiguration"),
            certificate_authority_type=p.get("Type"),
            security_standard=p.get("KeyStorageSecurityStandard"),
            tags=p.get("Tags") or [],
        )
        if p.get("UsageMode"):  # moto's backend takes no UsageMode (AWS default: GENERAL_PURPOSE)
            _pca(account_id, region_name).describe_certificate_authority(arn).usage_mode = p["UsageMode"]
        return cls(arn, account_id, region_name, p)

    @classmethod
    def _update(cls, res: Self, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        new, old = p, res.props
        changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
        if changed <= _CA_UPDATABLE:
            backend = _pca(account_id, region_name)
            arn = res.physical_id
            if "RevocationConfiguration" in changed and new.get("RevocationConfiguration"):
                ca = backend.describe_certificate_authority(arn)
                ca.set_revocation_configuration(new["RevocationConfiguration"])
                if ca.status == "ACTIVE":
                    acmpca.crl.publish(ca)  # as UpdateCertificateAuthority does
            if "Tags" in changed:
                if old.get("Tags"):
                    backend.untag_certificate_authority(arn, old["Tags"])
                if new.get("Tags"):
                    backend.tag_certificate_authority(arn, new["Tags"])
            res.props = new
            return res
        # Any other change replaces the CA, as in AWS.
        replacement = cls._create(name, new, account_id, region_name)
        res.delete(account_id, region_name)
        return replacement

    @classmethod
    def _remove(cls, physical_id: str, props: dict[str, Any], account_id: str, region_name: str) -> None:
        # As CloudFormation's handler does: an ACTIVE CA is disabled first (PCA refuses to delete it).
        backend = _pca(account_id, region_name)
        ca = backend.certificate_authorities.get(physical_id)
        if ca is not None and ca.status == "ACTIVE":
            backend.update_certificate_authority(physical_id, None, "DISABLED")
        if ca is None or ca.status != "DELETED":
            backend.delete_certificate_authority(physical_id, 7)


class PcaCertificate(_Resource, CloudFormationModel):
    CFN_TYPE = "AWS::ACMPCA::Certificate"
    CFN_ATTRS = {
        "Arn": lambda r: r.physical_id,
        "Certificate": lambda r: (
            r._ca(r.props.get("CertificateAuthorityArn")).get_issued(r.physical_id).pem.decode().strip()
        ),
    }
    # _remove stays the no-op default: an issued certificate cannot be deleted from a CA.

    @classmethod
    def _create(cls, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        p = dict(p)
        csr = p.pop("CertificateSigningRequest", "")
        params = {
            "CertificateAuthorityArn": p.get("CertificateAuthorityArn"),
            "SigningAlgorithm": p.get("SigningAlgorithm"),
            "TemplateArn": p.get("TemplateArn"),
            "Validity": _int_validity(p.get("Validity")),
            "ValidityNotBefore": _int_validity(p.get("ValidityNotBefore")),
            "ApiPassthrough": p.get("ApiPassthrough"),
        }
        arn = acmpca.backend_issue_certificate(_pca(account_id, region_name), params, csr.encode())
        return cls(arn, account_id, region_name, p)

    @classmethod
    def _update(cls, res: Self, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        # Every property of AWS::ACMPCA::Certificate requires replacement: issue a new one.
        return cls._create(name, p, account_id, region_name)


def _int_validity(v: Any) -> Any:
    if isinstance(v, dict) and "Value" in v:
        v = dict(v)
        try:
            v["Value"] = int(float(v["Value"]))
        except (TypeError, ValueError):
            pass
    return v


class PcaCertificateAuthorityActivation(_Resource, CloudFormationModel):
    """Ref (the physical id) is the CA's ARN."""

    CFN_TYPE = "AWS::ACMPCA::CertificateAuthorityActivation"
    CFN_ATTRS = {
        "CompleteCertificateChain": lambda r: r._ca(r.physical_id).chain_pem().decode().strip(),
    }

    @staticmethod
    def _apply(p: dict[str, Any], account_id: str, region_name: str) -> str:
        backend = _pca(account_id, region_name)
        ca_arn = p.get("CertificateAuthorityArn")
        chain = p.get("CertificateChain")
        backend.import_certificate_authority_certificate(
            certificate_authority_arn=ca_arn,
            certificate=(p.get("Certificate") or "").encode(),
            certificate_chain=chain.encode() if chain else None,
        )
        status = p.get("Status", "ACTIVE")
        if status != "ACTIVE":
            backend.update_certificate_authority(ca_arn, None, status)
        return str(ca_arn)

    @classmethod
    def _create(cls, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        return cls(cls._apply(p, account_id, region_name), account_id, region_name, p)

    @classmethod
    def _update(cls, res: Self, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        old = res.props
        backend = _pca(account_id, region_name)
        if p.get("CertificateAuthorityArn") != old.get("CertificateAuthorityArn"):
            res.delete(account_id, region_name)
            return cls._create(name, p, account_id, region_name)
        if (p.get("Certificate"), p.get("CertificateChain")) != (old.get("Certificate"), old.get("CertificateChain")):
            cls._apply(p, account_id, region_name)
        else:
            backend.update_certificate_authority(res.physical_id, None, p.get("Status", "ACTIVE"))
        res.props = p
        return res

    @classmethod
    def _remove(cls, physical_id: str, props: dict[str, Any], account_id: str, region_name: str) -> None:
        """Deleting an activation disables the CA (as AWS does); a deleted CA stays deleted."""
        backend = _pca(account_id, region_name)
        ca = backend.certificate_authorities.get(physical_id)
        if ca is not None and ca.status == "ACTIVE":
            backend.update_certificate_authority(physical_id, None, "DISABLED")


class S3BucketPolicy(_Resource, CloudFormationModel):
    """Ref (the physical id) is the logical resource name; the bucket is props["Bucket"]."""

    CFN_TYPE = "AWS::S3::BucketPolicy"

    @staticmethod
    def _s3(account_id: str, region_name: str) -> Any:
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        return s3_backends[account_id][get_partition(region_name)]

    @classmethod
    def _create(cls, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        bucket = p["Bucket"]
        doc = p.get("PolicyDocument", {})
        text = doc if isinstance(doc, str) else json.dumps(doc)
        cls._s3(account_id, region_name).put_bucket_policy(bucket, text.encode())
        return cls(name, account_id, region_name, p)

    @classmethod
    def _update(cls, res: Self, name: str, p: dict[str, Any], account_id: str, region_name: str) -> Self:
        if p.get("Bucket") != res.props["Bucket"]:
            res.delete(account_id, region_name)
        return cls._create(res.physical_id, p, account_id, region_name)

    @classmethod
    def _remove(cls, physical_id: str, props: dict[str, Any], account_id: str, region_name: str) -> None:
        from moto.s3.exceptions import MissingBucket

        bucket = props.get("Bucket")
        if not bucket:
            return
        try:
            cls._s3(account_id, region_name).delete_bucket_policy(bucket)
        except MissingBucket:
            pass


def install() -> None:
    """The classes above are registered by being defined; drop moto's cached type map if any."""
    import sys

    parsing = sys.modules.get("moto.cloudformation.parsing")
    if parsing is not None:
        for name in ("get_model_list", "get_model_map", "get_name_type_map"):
            fn = getattr(parsing, name, None)
            if fn is not None and hasattr(fn, "cache_clear"):
                fn.cache_clear()
