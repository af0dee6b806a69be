#!/usr/bin/env python3
"""Print the `ValidityOrder` Rule of infra/templates/hierarchy.yaml.

CloudFormation Rules have no numeric comparison (only Equals/Contains/And/Or/Not/...), so
"root validity > intermediate > issuing" is spelled out as one assertion per value:
"if IntermediateValidityYears == k then RootValidityYears is one of k+1..max". Strictly shorter:
Private CA refuses a CA certificate whose NotAfter passes its issuer's, and a child issued later
with the same validity in years would end after its parent. The ranges below
must match the parameters' MinValue/MaxValue; infra/tests/test_params.py checks the result
exhaustively against every combination, so a stale block fails the gate.

Usage: python3 infra/tools/gen_validity_rules.py  (paste the output under `Rules:`)
"""

RANGES = {
    "RootValidityYears": (2, 30),
    "IntermediateValidityYears": (1, 20),
    "IssuingValidityYears": (1, 10),
}
PAIRS = [("IntermediateValidityYears", "RootValidityYears"), ("IssuingValidityYears", "IntermediateValidityYears")]


def main() -> None:
    print("  ValidityOrder:")
    print("    Assertions:")
    for child, parent in PAIRS:
        cmin, cmax = RANGES[child]
        pmin, pmax = RANGES[parent]
        for k in range(max(cmin, pmin), cmax + 1):
            allowed = ", ".join(f'"{v}"' for v in range(k + 1, pmax + 1))
            print(
                f"      - Assert: {{'Fn::Or': [{{'Fn::Not': [{{'Fn::Equals': [{{Ref: {child}}}, \"{k}\"]}}]}}, "
                f"{{'Fn::Contains': [[{allowed}], {{Ref: {parent}}}]}}]}}"
            )
            print(f"        AssertDescription: {child} ({k}) must be shorter than {parent}")


if __name__ == "__main__":
    main()
