"""Parameter validation of infra/templates/hierarchy.yaml: bad input fails with a message naming it.

Runs in the gate (`make infra-check`). Uses infra/lib/cfn_params.py, the same preflight that
`make infra-deploy` runs before it calls CloudFormation.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(INFRA / "lib"))
sys.path.insert(0, str(INFRA / "checkov"))

import cfn_params  # noqa: E402
import cfn_yaml  # noqa: E402

TEMPLATE = cfn_yaml.load(INFRA / "templates" / "hierarchy.yaml")
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"


def check(**params: str) -> dict[str, str]:
    return cfn_params.resolve(TEMPLATE, {k: str(v) for k, v in params.items()})


def test_defaults_are_valid_pca_mode() -> None:
    values = check()
    assert values["RootMode"] == "PCA" and values["KeyAlgorithm"] == "EC_prime256v1"


def test_offline_phase1_valid_without_certificates() -> None:
    assert check(RootMode="OFFLINE", OfflinePhase="1")["OfflinePhase"] == "1"


def test_offline_phase2_valid_with_certificates() -> None:
    check(RootMode="OFFLINE", OfflinePhase="2", OfflineIntermediateCertificate=PEM, OfflineRootCertificate=PEM)


def test_unknown_key_algorithm_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError, match=r"^parameter KeyAlgorithm: 'ED25519' is not one of"):
        check(KeyAlgorithm="ED25519")


def test_unknown_root_mode_and_usage_mode_are_named() -> None:
    with pytest.raises(cfn_params.ParameterError, match="^parameter RootMode:"):
        check(RootMode="HSM")
    with pytest.raises(cfn_params.ParameterError, match="^parameter UsageMode:"):
        check(UsageMode="CHEAP")


def test_validity_out_of_range_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError, match=r"^parameter IssuingValidityYears: 11 is above the maximum 10"):
        check(IssuingValidityYears=11)
    with pytest.raises(cfn_params.ParameterError, match=r"^parameter RootValidityYears: 1 is below the minimum 2"):
        check(RootValidityYears=1)
    with pytest.raises(cfn_params.ParameterError, match=r"^parameter RootValidityYears: 'ten' is not a number"):
        check(RootValidityYears="ten")


def test_intermediate_validity_beyond_root_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule ValidityOrder: IntermediateValidityYears \(12\) must be shorter than RootValidityYears$"):
        check(RootValidityYears=10, IntermediateValidityYears=12, IssuingValidityYears=5)


def test_issuing_validity_beyond_intermediate_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule ValidityOrder: IssuingValidityYears \(6\) must be shorter than IntermediateValidityYears$"):
        check(RootValidityYears=10, IntermediateValidityYears=5, IssuingValidityYears=6)


def test_child_validity_equal_to_parent_is_refused() -> None:
    """Private CA refuses a CA certificate ending after its issuer's; a child issued later with the
    parent's validity in years would, so equal validity is refused before CloudFormation runs."""
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule ValidityOrder: IntermediateValidityYears \(10\) must be shorter than RootValidityYears$"):
        check(RootValidityYears=10, IntermediateValidityYears=10, IssuingValidityYears=5)
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule ValidityOrder: IssuingValidityYears \(5\) must be shorter than IntermediateValidityYears$"):
        check(RootValidityYears=10, IntermediateValidityYears=5, IssuingValidityYears=5)
    check(RootValidityYears=10, IntermediateValidityYears=9, IssuingValidityYears=8)


def test_validity_rule_matches_numeric_order_exhaustively() -> None:
    """The enumerated ValidityOrder rule (CloudFormation Rules cannot compare numbers) is exactly root>int>iss."""
    p = TEMPLATE["Parameters"]
    rng = {n: range(int(p[n]["MinValue"]), int(p[n]["MaxValue"]) + 1)
           for n in ("RootValidityYears", "IntermediateValidityYears", "IssuingValidityYears")}
    for r, i, s in itertools.product(*rng.values()):
        ok = r > i > s
        try:
            check(RootValidityYears=r, IntermediateValidityYears=i, IssuingValidityYears=s)
            accepted = True
        except cfn_params.ParameterError as e:
            assert str(e).startswith("rule ValidityOrder:"), str(e)
            accepted = False
        assert accepted == ok, (r, i, s)


def test_offline_phase2_without_signed_certificate_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule OfflinePhase2NeedsSignedCertificate: OfflineIntermediateCertificate is required"):
        check(RootMode="OFFLINE", OfflinePhase="2", OfflineRootCertificate=PEM)
    with pytest.raises(cfn_params.ParameterError,
                       match=r"^rule OfflinePhase2NeedsSignedCertificate: OfflineRootCertificate is required"):
        check(RootMode="OFFLINE", OfflinePhase="2", OfflineIntermediateCertificate=PEM)


def test_certificate_that_is_not_pem_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError, match="^parameter OfflineIntermediateCertificate: must be empty or one PEM"):
        check(RootMode="OFFLINE", OfflinePhase="2", OfflineIntermediateCertificate="MIIB...", OfflineRootCertificate=PEM)


def test_pca_mode_rejects_offline_certificates() -> None:
    with pytest.raises(cfn_params.ParameterError, match="^rule PcaRootTakesNoOfflineCertificates:"):
        check(RootMode="PCA", OfflineIntermediateCertificate=PEM)


def test_undeclared_parameter_is_named() -> None:
    with pytest.raises(cfn_params.ParameterError, match="^parameter KeyAlgo: not declared"):
        check(KeyAlgo="EC_prime256v1")


def test_key_algorithm_parameter_matches_checkov_allowed_set() -> None:
    from _common import ALLOWED_KEY_ALGORITHMS

    assert set(TEMPLATE["Parameters"]["KeyAlgorithm"]["AllowedValues"]) == set(ALLOWED_KEY_ALGORITHMS)


def test_every_checkov_skip_is_justified_in_place() -> None:
    skips = [(name, s) for name, res in TEMPLATE["Resources"].items()
             for s in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip", [])]
    assert skips, "expected the two documented skips"
    for name, s in skips:
        assert len(str(s.get("comment", "")).strip()) >= 40, f"{name}: skip {s.get('id')} needs a reason"


def crl_object(ca: str) -> dict:
    """The exact ARN of a CA's CRL object, crl/<ca-id>.crl in the CRL bucket."""
    return {"Fn::Sub": ["${CrlBucket.Arn}/crl/${CaId}.crl",
                        {"CaId": {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": ca}]}]}}]}


def test_provisioning_policy_grants_exactly_the_documented_actions() -> None:
    """The design doc quotes these; a change here must be a deliberate one."""
    stmts = TEMPLATE["Resources"]["ProvisioningPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    grants = {s["Sid"]: (sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]), s["Resource"])
              for s in stmts}
    issuing = {"Fn::GetAtt": ["IssuingCA", "Arn"]}
    table = {"Fn::GetAtt": ["RegistryTable", "Arn"]}
    assert grants == {
        "IssueEndEntityCertificatesOnly": (["acm-pca:IssueCertificate"], issuing),
        "ReadIssuingCaAndIssuedCertificates": (["acm-pca:DescribeCertificateAuthority", "acm-pca:GetCertificate",
                                                "acm-pca:GetCertificateAuthorityCertificate"], issuing),
        "RegistryIssuingPath": (["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                                 "dynamodb:UpdateItem"], table),
    }
    assert all(s["Effect"] == "Allow" for s in stmts)
    revoke = TEMPLATE["Resources"]["RevocationPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Sid"]: (sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]), s["Resource"])
            for s in revoke} == {
        "RevokeDeviceCertificates": (["acm-pca:GetCertificate", "acm-pca:RevokeCertificate"], issuing),
        "RegistryMarkRevoked": (["dynamodb:Query", "dynamodb:UpdateItem"], table),
        "RegistryRecordCompromisedKey": (["dynamodb:PutItem"], table),
        # RevokeCertificate's caller must be able to write the CRL: the issuing CA's object only
        "CallerMayWriteTheCrl": (["s3:PutObject"], crl_object("IssuingCA")),
        # pca revoke --wait-crl reads the CRL back until it lists the serial
        "WaitForTheCrl": (["acm-pca:DescribeCertificateAuthority", "acm-pca:GetCertificateAuthorityCertificate"],
                          issuing),
        "ReadTheCrl": (["s3:GetObject"], crl_object("IssuingCA")),
    }
    # The revocation role may put only compromised-key items, never a device's or a serial's.
    record = next(s for s in revoke if s["Sid"] == "RegistryRecordCompromisedKey")
    assert record["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["KEY#*"]}}


def test_crl_read_and_audit_policies_grant_exactly_the_documented_actions() -> None:
    """pca crl and pca audit-reconcile (the design doc quotes these)."""
    def grants(name: str) -> dict:
        stmts = TEMPLATE["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
        assert all(s["Effect"] == "Allow" for s in stmts)
        return {s["Sid"]: (sorted(s["Action"] if isinstance(s["Action"], list) else [s["Action"]]), s["Resource"])
                for s in stmts}
    issuing = {"Fn::GetAtt": ["IssuingCA", "Arn"]}
    intermediate = {"Fn::GetAtt": ["IntermediateCA", "Arn"]}
    assert grants("CrlReadPolicy") == {
        "LocateCrlAndCaCertificate": (["acm-pca:DescribeCertificateAuthority",
                                       "acm-pca:GetCertificateAuthorityCertificate"], [issuing, intermediate]),
        "ReadCrlObjects": (["s3:GetObject"], [crl_object("IssuingCA"), crl_object("IntermediateCA")]),
    }
    reports = {"Fn::Sub": ["${AuditReportBucket.Arn}/audit-report/${CaId}/*",
                           {"CaId": {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "IssuingCA"}]}]}}]}
    assert grants("AuditPolicy") == {
        "AuditReportsOfTheIssuingCa": (["acm-pca:CreateCertificateAuthorityAuditReport",
                                        "acm-pca:DescribeCertificateAuthorityAuditReport"], issuing),
        "ReadAndWriteAuditReports": (["s3:GetObject", "s3:PutObject"], reports),
        "RegistryReads": (["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"],
                          {"Fn::GetAtt": ["RegistryTable", "Arn"]}),
    }
