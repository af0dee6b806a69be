"""CKV_HSM_2: AWS Private CA keys use an allowed EC/RSA algorithm with a matching signing algorithm."""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

try:
    from ._common import ALLOWED_KEY_ALGORITHMS, branches
except ImportError:  # checkov imports external checks as top-level modules
    from _common import ALLOWED_KEY_ALGORITHMS, branches

SIGNING_FAMILY = {"EC": "WITHECDSA", "RSA": "WITHRSA"}


class AcmPcaKeyAlgorithm(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure AWS Private CA uses an allowed key algorithm (EC P-256/P-384, RSA 3072/4096)",
            id="CKV_HSM_2",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::ACMPCA::CertificateAuthority"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        self.evaluated_keys = ["Properties/KeyAlgorithm", "Properties/SigningAlgorithm"]
        key = props.get("KeyAlgorithm")
        if key not in ALLOWED_KEY_ALGORITHMS:
            return CheckResult.FAILED
        suffix = SIGNING_FAMILY[key.split("_")[0]]
        # SigningAlgorithm may be chosen by Fn::If on KeyAlgorithm: every literal branch must be of a
        # known family; the branch matching the rendered key must exist.
        algs = [a for a in branches(props.get("SigningAlgorithm")) if isinstance(a, str)]
        if not algs or not any(a.endswith(suffix) for a in algs):
            return CheckResult.FAILED
        if not all(a.endswith(("WITHECDSA", "WITHRSA")) for a in algs):
            return CheckResult.FAILED
        return CheckResult.PASSED


check = AcmPcaKeyAlgorithm()
