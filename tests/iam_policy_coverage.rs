//! Every AWS call the provisioning and revocation paths make is granted by the IAM policies in
//! infra/ (the stand-in does not enforce IAM, so without this a call the policy denies would only
//! fail on real AWS). Scans src/pca/*.rs for SDK operations and checks them against the actions
//! of ProvisioningPolicy + RevocationPolicy in infra/templates/hierarchy.yaml.

use std::collections::BTreeSet;

/// Operations deliberately outside the service roles, with the reason.
const NOT_FOR_SERVICE_ROLES: &[(&str, &str)] = &[
    (
        "dynamodb:CreateTable",
        "`pca init-table`: an administrator's set-up command (infra/ creates the table)",
    ),
    (
        "dynamodb:DescribeTable",
        "only the table-exists waiter of `pca init-table`",
    ),
    (
        "dynamodb:Scan",
        "`pca list` / `pca reconcile` / `provision --plan`: operator commands, not the provisioning path",
    ),
    (
        "dynamodb:BatchGetItem",
        "`provision --plan`: an operator's read-only planning command, not the provisioning path",
    ),
    (
        "dynamodb:TransactWriteItems",
        "not an IAM action: IAM authorises each Put/Update/Delete inside",
    ),
];

fn pascal(op: &str) -> String {
    op.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn every_sdk_call_of_the_pca_module_is_granted_or_explicitly_excluded() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut used = BTreeSet::new();
    for entry in std::fs::read_dir(format!("{root}/src/pca")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
        for (client, service) in [(".ddb.", "dynamodb"), (".pca.", "acm-pca")] {
            for (i, _) in flat.match_indices(client) {
                let rest = &flat[i + client.len()..];
                let op: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if op.is_empty() || !rest[op.len()..].starts_with("()") {
                    continue;
                }
                let action = match op.as_str() {
                    "wait_until_certificate_issued" => "GetCertificate".to_string(),
                    "wait_until_table_exists" => "DescribeTable".to_string(),
                    _ => pascal(&op),
                };
                used.insert(format!("{service}:{action}"));
            }
        }
    }
    assert!(
        used.contains("acm-pca:IssueCertificate") && used.contains("dynamodb:Query"),
        "the scan found no SDK calls: {used:?}"
    );

    let template =
        std::fs::read_to_string(format!("{root}/infra/templates/hierarchy.yaml")).unwrap();
    let granted: BTreeSet<String> = template
        .lines()
        .filter(|l| l.trim_start().starts_with("Action:"))
        .flat_map(|l| {
            l.split_once("Action:")
                .unwrap()
                .1
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| a.starts_with("acm-pca:") || a.starts_with("dynamodb:"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(granted.contains("acm-pca:IssueCertificate"), "{granted:?}");

    let excluded: BTreeSet<&str> = NOT_FOR_SERVICE_ROLES.iter().map(|(a, _)| *a).collect();
    let missing: Vec<_> = used
        .iter()
        .filter(|a| !granted.contains(*a) && !excluded.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "src/pca calls {missing:?}, which infra/templates/hierarchy.yaml's policies do not grant"
    );
}
