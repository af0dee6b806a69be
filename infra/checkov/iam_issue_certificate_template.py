"""CKV_HSM_4: IAM statements allowing acm-pca:IssueCertificate pin acm-pca:TemplateArn to end-entity templates.

Without the condition a principal that may issue certificates may also issue CA certificates
(SubordinateCACertificate_* templates) and so mint its own intermediate.
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

try:
    from ._common import END_ENTITY_TEMPLATE_RE, EXACT_OPERATORS, action_matches, as_list, policy_documents, statements, unwrap_str
except ImportError:
    from _common import END_ENTITY_TEMPLATE_RE, EXACT_OPERATORS, action_matches, as_list, policy_documents, statements, unwrap_str


def _grants_issue(stmt: dict) -> bool:
    if "NotAction" in stmt:
        return True  # NotAction allows everything it does not list: treat as granting IssueCertificate
    return any(action_matches(a, "acm-pca:IssueCertificate") for a in as_list(stmt.get("Action")))


def _template_bound(condition) -> bool:
    if not isinstance(condition, dict):
        return False
    found = False
    for operator, block in condition.items():
        if operator.startswith("__") or not isinstance(block, dict):
            continue
        for key, values in block.items():
            if key.lower() != "acm-pca:templatearn":
                continue
            if operator.lower() not in EXACT_OPERATORS:
                return False
            strings = [unwrap_str(v) for v in as_list(values)]
            if not strings or not all(s and END_ENTITY_TEMPLATE_RE.match(s) for s in strings):
                return False
            found = True
    return found


class IssueCertificateTemplateBound(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure acm-pca:IssueCertificate is limited to end-entity templates (acm-pca:TemplateArn)",
            id="CKV_HSM_4",
            categories=[CheckCategories.IAM],
            supported_resources=[
                "AWS::IAM::ManagedPolicy",
                "AWS::IAM::Policy",
                "AWS::IAM::Role",
                "AWS::IAM::User",
                "AWS::IAM::Group",
            ],
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["Properties"]
        for document in policy_documents(conf.get("Type", ""), conf):
            for stmt in statements(document):
                if not isinstance(stmt, dict):
                    return CheckResult.FAILED
                if stmt.get("Effect") != "Allow":
                    continue
                if _grants_issue(stmt) and not _template_bound(stmt.get("Condition")):
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = IssueCertificateTemplateBound()
