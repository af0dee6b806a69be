"""CKV_HSM_3: AWS Private CA keys are stored in FIPS 140-2 level 3 (or higher) HSMs."""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

try:
    from ._common import REQUIRED_KEY_STORAGE
except ImportError:
    from _common import REQUIRED_KEY_STORAGE


class AcmPcaKeyStorage(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure AWS Private CA KeyStorageSecurityStandard is FIPS_140_2_LEVEL_3_OR_HIGHER",
            id="CKV_HSM_3",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::ACMPCA::CertificateAuthority"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        self.evaluated_keys = ["Properties/KeyStorageSecurityStandard"]
        # absent means the AWS default, which is level 3 today but is not pinned: require it explicitly
        if props.get("KeyStorageSecurityStandard") == REQUIRED_KEY_STORAGE:
            return CheckResult.PASSED
        return CheckResult.FAILED


check = AcmPcaKeyStorage()
