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
from typing import Any

from moto.core.common_models import CloudFormationModel

from . import acmpca

_CA_UPDATABLE = {"RevocationConfiguration", "Tags"}


def _pca(account_id: str, region_name: str) -> Any:
    from moto.acmpca.models import acmpca_backends

    return acmpca_backends[account_id][region_name]


def _bad_attr(resource: str, attr: str) -> Exception:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    return UnformattedGetAttTemplateException()


class PcaCertificateAuthority(CloudFormationModel):
    def __init__(self, arn: str, account_id: str, region_name: str, props: dict[str, Any]):
        self.arn = arn
        self.account_id = account_id
        self.region_name = region_name
        self.props = props

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ACMPCA::CertificateAuthority"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "CertificateSigningRequest")

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def get_cfn_attribute(self, attr: str) -> Any:
        if attr == "Arn":
            return self.arn
        if attr == "CertificateSigningRequest":
            ca = _pca(self.account_id, self.region_name).describe_certificate_authority(self.arn)
            return ca.csr.decode().strip()
        raise _bad_attr("CertificateAuthority", attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> PcaCertificateAuthority:
        p = cloudformation_json.get("Properties", {})
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
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: PcaCertificateAuthority,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> PcaCertificateAuthority:
        new = cloudformation_json.get("Properties", {})
        old = original_resource.props
        changed = {k for k in set(new) | set(old) if new.get(k) != old.get(k)}
        if changed <= _CA_UPDATABLE:
            backend = _pca(account_id, region_name)
            if "RevocationConfiguration" in changed and new.get("RevocationConfiguration"):
                ca = backend.describe_certificate_authority(original_resource.arn)
                ca.set_revocation_configuration(new["RevocationConfiguration"])
            if "Tags" in changed:
                if old.get("Tags"):
                    backend.untag_certificate_authority(original_resource.arn, old["Tags"])
                if new.get("Tags"):
                    backend.tag_certificate_authority(original_resource.arn, new["Tags"])
            original_resource.props = new
            return original_resource
        # Any other change replaces the CA, as in AWS.
        replacement = cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )
        original_resource.delete(account_id, region_name)
        return replacement

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        _pca(account_id, region_name).delete_certificate_authority(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        _pca(account_id, region_name).delete_certificate_authority(self.arn)

    def is_created(self) -> bool:
        return True


class PcaCertificate(CloudFormationModel):
    def __init__(self, arn: str, ca_arn: str, account_id: str, region_name: str):
        self.arn = arn
        self.ca_arn = ca_arn
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ACMPCA::Certificate"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "Certificate")

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def get_cfn_attribute(self, attr: str) -> Any:
        if attr == "Arn":
            return self.arn
        if attr == "Certificate":
            ca = _pca(self.account_id, self.region_name).describe_certificate_authority(self.ca_arn)
            return ca.get_issued(self.arn).pem.decode().strip()
        raise _bad_attr("Certificate", attr)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> PcaCertificate:
        p = dict(cloudformation_json.get("Properties", {}))
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
        return cls(arn, params["CertificateAuthorityArn"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: PcaCertificate,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> PcaCertificate:
        # Every property of AWS::ACMPCA::Certificate requires replacement: issue a new one.
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        return None  # an issued certificate cannot be deleted from a CA

    def delete(self, account_id: str, region_name: str) -> None:
        return None

    def is_created(self) -> bool:
        return True


def _int_validity(v: Any) -> Any:
    if isinstance(v, dict) and "Value" in v:
        v = dict(v)
        try:
            v["Value"] = int(float(v["Value"]))
        except (TypeError, ValueError):
            pass
    return v


class PcaCertificateAuthorityActivation(CloudFormationModel):
    def __init__(self, ca_arn: str, account_id: str, region_name: str, props: dict[str, Any]):
        self.ca_arn = ca_arn
        self.account_id = account_id
        self.region_name = region_name
        self.props = props

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ACMPCA::CertificateAuthorityActivation"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "CompleteCertificateChain"

    @property
    def physical_resource_id(self) -> str:
        return self.ca_arn

    def get_cfn_attribute(self, attr: str) -> Any:
        if attr == "CompleteCertificateChain":
            ca = _pca(self.account_id, self.region_name).describe_certificate_authority(self.ca_arn)
            return ca.chain_pem().decode().strip()
        raise _bad_attr("CertificateAuthorityActivation", attr)

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
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> PcaCertificateAuthorityActivation:
        p = cloudformation_json.get("Properties", {})
        return cls(cls._apply(p, account_id, region_name), account_id, region_name, p)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: PcaCertificateAuthorityActivation,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> PcaCertificateAuthorityActivation:
        p = cloudformation_json.get("Properties", {})
        old = original_resource.props
        backend = _pca(account_id, region_name)
        if p.get("CertificateAuthorityArn") != old.get("CertificateAuthorityArn"):
            original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if (p.get("Certificate"), p.get("CertificateChain")) != (old.get("Certificate"), old.get("CertificateChain")):
            cls._apply(p, account_id, region_name)
        else:
            backend.update_certificate_authority(original_resource.ca_arn, None, p.get("Status", "ACTIVE"))
        original_resource.props = p
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        _disable(resource_name, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        _disable(self.ca_arn, account_id, region_name)

    def is_created(self) -> bool:
        return True


def _disable(ca_arn: str, account_id: str, region_name: str) -> None:
    """Deleting an activation disables the CA (as AWS does); a deleted CA stays deleted."""
    backend = _pca(account_id, region_name)
    ca = backend.certificate_authorities.get(ca_arn)
    if ca is not None and ca.status == "ACTIVE":
        backend.update_certificate_authority(ca_arn, None, "DISABLED")


class S3BucketPolicy(CloudFormationModel):
    def __init__(self, name: str, bucket: str, account_id: str, region_name: str):
        self.name = name
        self.bucket = bucket
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attr: str) -> Any:
        raise _bad_attr("BucketPolicy", attr)

    @staticmethod
    def _s3(account_id: str, region_name: str) -> Any:
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        return s3_backends[account_id][get_partition(region_name)]

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> S3BucketPolicy:
        p = cloudformation_json.get("Properties", {})
        bucket = p["Bucket"]
        doc = p.get("PolicyDocument", {})
        text = doc if isinstance(doc, str) else json.dumps(doc)
        cls._s3(account_id, region_name).put_bucket_policy(bucket, text.encode())
        return cls(resource_name, bucket, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: S3BucketPolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> S3BucketPolicy:
        new_bucket = cloudformation_json.get("Properties", {}).get("Bucket")
        if new_bucket != original_resource.bucket:
            original_resource.delete(account_id, region_name)
        new = cls.create_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )
        return new

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> None:
        bucket = cloudformation_json.get("Properties", {}).get("Bucket")
        if bucket:
            cls(resource_name, bucket, account_id, region_name).delete(account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.s3.exceptions import MissingBucket

        try:
            self._s3(account_id, region_name).delete_bucket_policy(self.bucket)
        except MissingBucket:
            pass

    def is_created(self) -> bool:
        return True


def install() -> None:
    """The classes above are registered by being defined; drop moto's cached type map if any."""
    import sys

    parsing = sys.modules.get("moto.cloudformation.parsing")
    if parsing is not None:
        for name in ("get_model_list", "get_model_map", "get_name_type_map"):
            fn = getattr(parsing, name, None)
            if fn is not None and hasattr(fn, "cache_clear"):
                fn.cache_clear()
