"""CKV_HSM_1: every AWS Private CA publishes a CRL into an S3 bucket."""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class AcmPcaCrlEnabled(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure AWS Private CA has a CRL enabled into an S3 bucket",
            id="CKV_HSM_1",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::ACMPCA::CertificateAuthority"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        crl = ((props.get("RevocationConfiguration") or {}).get("CrlConfiguration")) or {}
        self.evaluated_keys = ["Properties/RevocationConfiguration/CrlConfiguration"]
        enabled = crl.get("Enabled")
        if (enabled is True or str(enabled).lower() == "true") and crl.get("S3BucketName"):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = AcmPcaCrlEnabled()
