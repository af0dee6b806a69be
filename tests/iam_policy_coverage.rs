//! Every AWS call the code makes is granted by the IAM policies in infra/ (the stand-in does not
//! enforce IAM, so without this a call the policy denies would only fail on real AWS). Scans src/
//! for SDK operations of the DynamoDB, Private CA and S3 clients and checks:
//! - every call is granted by some managed policy of infra/templates/hierarchy.yaml, or excluded
//!   with a reason (operator and set-up commands);
//! - for each command that runs under a role (provision, pca revoke, pca crl, pca audit-reconcile),
//!   every call reachable from its entry function (a call graph by function name) is granted by
//!   that role's own policy;
//! - a rule IAM documents but the stand-in cannot show: a policy that grants RevokeCertificate also
//!   grants s3:PutObject on the CRL objects (the caller must be able to write the CRL);
//! - the CRL and audit policies grant their calls on the right resources.

use std::collections::BTreeSet;
use std::path::Path;

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
        "dynamodb:DescribeContinuousBackups",
        "`doctor`: an operator's check that the table has point-in-time recovery",
    ),
    (
        "dynamodb:BatchGetItem",
        "`provision --plan`: an operator's read-only planning command, not the provisioning path",
    ),
];

const TEMPLATE: &str = "infra/templates/hierarchy.yaml";

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

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The IAM action of one SDK operation (`wait_until_*` waiters poll a Get/Describe).
fn action(service: &str, op: &str) -> String {
    let op = match op {
        "wait_until_certificate_issued" => "get_certificate",
        "wait_until_table_exists" => "describe_table",
        o => o,
    };
    format!("{service}:{}", pascal(op))
}

/// Is the character before byte `i` part of an identifier?
fn ident_before(text: &str, i: usize) -> bool {
    text[..i]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The IAM actions of the SDK calls in `code`: `<client>.<op>()` with `client` one of the field or
/// variable names `ddb`, `pca`, `s3`; and, because TransactWriteItems is no IAM action but is
/// authorised per contained item, each `TransactWriteItem::builder().put/update/delete/
/// condition_check(` as the action IAM checks for it.
fn sdk_actions(code: &str) -> BTreeSet<String> {
    let flat: String = code.split_whitespace().collect();
    let mut used = BTreeSet::new();
    for (client, service) in [("ddb", "dynamodb"), ("pca", "acm-pca"), ("s3", "s3")] {
        let needle = format!("{client}.");
        for (i, _) in flat.match_indices(&needle) {
            // a whole identifier: `clients.s3.x()` or `=s3.x()`, not `aws_sdk_s3.` or `xs3.`
            if ident_before(&flat, i) {
                continue;
            }
            let rest = &flat[i + needle.len()..];
            let op: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !op.is_empty() && rest[op.len()..].starts_with("()") && op != "transact_write_items"
            {
                used.insert(action(service, &op));
            }
        }
    }
    for (part, act) in [
        ("put", "PutItem"),
        ("update", "UpdateItem"),
        ("delete", "DeleteItem"),
        ("condition_check", "ConditionCheckItem"),
    ] {
        if flat.contains(&format!("TransactWriteItem::builder().{part}(")) {
            used.insert(format!("dynamodb:{act}"));
        }
    }
    used
}

/// One `fn` of src/: its file, name and text up to the next `fn` of the file (good enough for a
/// call graph by name: nested and trailing items only ever add calls).
struct Function {
    file: String,
    name: String,
    body: String,
}

/// Every function of src/ outside `#[cfg(test)]` modules, comment lines dropped.
fn functions(root: &Path) -> Vec<Function> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let starts: Vec<(usize, String)> = code
            .match_indices("fn ")
            .filter(|(i, _)| !ident_before(&code, *i))
            .map(|(i, _)| {
                let name: String = code[i + 3..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                (i, name)
            })
            .filter(|(_, n)| !n.is_empty())
            .collect();
        for (k, (i, name)) in starts.iter().enumerate() {
            let end = starts.get(k + 1).map_or(code.len(), |(j, _)| *j);
            out.push(Function {
                file: file.clone(),
                name: name.clone(),
                body: code[i + 3 + name.len()..end].to_string(),
            });
        }
    }
    out
}

fn file_stem(file: &str) -> &str {
    Path::new(file).file_stem().unwrap().to_str().unwrap()
}

/// `use crate::…::module::{a, b};` / `use super::module::a;` of a file: imported name → module.
fn imports(file_text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stmt in file_text.split("use ").skip(1) {
        let stmt: String = stmt.split(';').next().unwrap().split_whitespace().collect();
        if !(stmt.starts_with("crate::") || stmt.starts_with("super::")) {
            continue;
        }
        let (path, names) = match stmt.split_once("::{") {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => match stmt.rsplit_once("::") {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => continue,
            },
        };
        let module = path.rsplit("::").next().unwrap().to_string();
        for n in names.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if n.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.push((n.to_string(), module.clone()));
            }
        }
    }
    out
}

/// The functions `f` calls, resolved by name: a name defined once is that function; a name
/// defined more than once (`run`, `fetch`, `download`, …) is resolved only when the call says which:
/// defined in the same file, qualified by its module (`audit::download(`), or imported from it.
/// Unresolved ambiguous names are dropped, so the graph can only miss calls, which the global test
/// (every call of src/ granted somewhere or excluded) and each command's expected calls catch.
fn callees<'a>(f: &Function, all: &'a [Function], file_text: &str) -> Vec<&'a Function> {
    let imported = imports(file_text);
    let body = f.body.as_str();
    let mut out = Vec::new();
    for (i, _) in body.match_indices('(') {
        let before = &body[..i];
        let before = before.strip_suffix('>').map_or(before, |b| {
            // turbofish: `name::<T>(`
            b.rfind("::<").map_or(b, |j| &b[..j])
        });
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &before[name_start..];
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let defs: Vec<&Function> = all.iter().filter(|g| g.name == name).collect();
        if defs.len() <= 1 {
            out.extend(defs);
            continue;
        }
        let same: Vec<&Function> = defs.iter().copied().filter(|g| g.file == f.file).collect();
        if !same.is_empty() {
            out.extend(same);
            continue;
        }
        let prefix = &before[..name_start];
        let module = if let Some(q) = prefix.strip_suffix("::") {
            let s = q
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |j| j + 1);
            Some(q[s..].to_string())
        } else if !prefix.ends_with('.') {
            imported
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| m.clone())
        } else {
            None
        };
        if let Some(m) = module {
            out.extend(defs.into_iter().filter(|g| file_stem(&g.file) == m));
        }
    }
    out
}

/// The IAM actions of every SDK call reachable from `entry` (a function `name` of `file`).
fn reachable_actions(root: &Path, all: &[Function], file: &str, name: &str) -> BTreeSet<String> {
    let texts: std::collections::BTreeMap<&str, String> = all
        .iter()
        .map(|f| f.file.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|p| (p, std::fs::read_to_string(root.join(p)).unwrap()))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<usize> = (0..all.len())
        .filter(|&k| all[k].file == file && all[k].name == name)
        .collect();
    assert!(!todo.is_empty(), "no fn {name} in {file}");
    let mut used = BTreeSet::new();
    while let Some(k) = todo.pop() {
        if !seen.insert(k) {
            continue;
        }
        let f = &all[k];
        used.extend(sdk_actions(&f.body));
        for g in callees(f, all, &texts[f.file.as_str()]) {
            let j = all.iter().position(|h| std::ptr::eq(h, g)).unwrap();
            todo.push(j);
        }
    }
    used
}

/// The actions of every `Action:` line in `text` (inline or bracketed lists).
fn actions(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("Action:"))
        .flat_map(|l| {
            l.split_once("Action:")
                .unwrap()
                .1
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| {
                    a.starts_with("acm-pca:") || a.starts_with("dynamodb:") || a.starts_with("s3:")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The text of one top-level resource of the template: from `  Name:` to the next line indented
/// by two spaces (the next resource) or by none (the next section).
fn resource<'a>(template: &'a str, name: &str) -> &'a str {
    let head = format!("\n  {name}:\n");
    let start = template
        .find(&head)
        .unwrap_or_else(|| panic!("{TEMPLATE} declares no resource {name}"))
        + 1;
    let mut end = start;
    for (n, line) in template[start..].split_inclusive('\n').enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if n > 0 && !line.trim().is_empty() && indent <= 2 && !line.trim_start().starts_with('#') {
            break;
        }
        end += line.len();
    }
    &template[start..end]
}

/// The statements of a policy resource: each `- Sid:` block as text.
fn statements(policy: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = policy.match_indices("- Sid:").map(|(i, _)| i).collect();
    starts.push(policy.len());
    starts.windows(2).map(|w| &policy[w[0]..w[1]]).collect()
}

fn is_allow_of(statement: &str, action: &str) -> bool {
    statement.contains("Effect: Allow") && actions(statement).contains(action)
}

/// The resources of a statement: its `Resource:` line and, for a block list, the `- ` lines under it.
fn resource_lines(statement: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut indent = None;
    for l in statement.lines() {
        let i = l.len() - l.trim_start().len();
        if l.trim_start().starts_with("Resource:") {
            indent = Some(i);
            out.push(l);
        } else if indent.is_some_and(|r| i > r && l.trim_start().starts_with("- ")) {
            out.push(l);
        } else {
            indent = None;
        }
    }
    out
}

/// Does some Allow statement of `policy` grant `action` on a resource containing `resource`?
fn grants_on(policy: &str, action: &str, resource: &str) -> bool {
    statements(policy)
        .iter()
        .any(|s| is_allow_of(s, action) && resource_lines(s).iter().any(|l| l.contains(resource)))
}

/// The exact ARN of a CA's CRL object (PCA writes `crl/<ca-id>.crl`), as the template spells it.
fn crl_object(ca: &str) -> String {
    format!(
        "[\"${{CrlBucket.Arn}}/crl/${{CaId}}.crl\", {{CaId: !Select [1, !Split [\"/\", !Ref {ca}]]}}]"
    )
}

fn read_template() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/{TEMPLATE}")).unwrap()
}

/// The commands that run under a role of infra/: the entry function, the managed policy of that
/// role, the calls its path must be found to make (so a call graph that lost its way fails), and
/// calls of the path deliberately not granted to the role, with the reason.
struct Command {
    name: &'static str,
    entry: (&'static str, &'static str),
    policy: &'static str,
    expected: &'static [&'static str],
    not_granted: &'static [(&'static str, &'static str)],
}

const COMMANDS: &[Command] = &[
    Command {
        name: "provision",
        entry: ("src/cli/provision.rs", "run"),
        policy: "ProvisioningPolicy",
        expected: &[
            "acm-pca:IssueCertificate",
            "acm-pca:GetCertificate",
            "dynamodb:PutItem",
            "dynamodb:Query",
        ],
        not_granted: &[
            (
                "dynamodb:BatchGetItem",
                "`provision --plan` runs as an operator, not the provisioning role",
            ),
            (
                "dynamodb:Scan",
                "`provision --plan` runs as an operator, not the provisioning role",
            ),
        ],
    },
    Command {
        name: "pca revoke",
        entry: ("src/cli/pca/revoke.rs", "run"),
        policy: "RevocationPolicy",
        expected: &[
            "acm-pca:RevokeCertificate",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
        ],
        not_granted: &[],
    },
    Command {
        name: "pca crl",
        entry: ("src/cli/pca/crl.rs", "run"),
        policy: "CrlReadPolicy",
        expected: &["acm-pca:DescribeCertificateAuthority", "s3:GetObject"],
        not_granted: &[],
    },
    Command {
        name: "pca audit-reconcile",
        entry: ("src/cli/pca/audit_reconcile.rs", "run"),
        policy: "AuditPolicy",
        expected: &[
            "acm-pca:CreateCertificateAuthorityAuditReport",
            "acm-pca:DescribeCertificateAuthorityAuditReport",
            "s3:GetObject",
            "dynamodb:Scan",
        ],
        not_granted: &[],
    },
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_sdk_call_of_src_is_granted_or_explicitly_excluded() {
    let mut used = BTreeSet::new();
    for f in functions(root()) {
        used.extend(sdk_actions(&f.body));
    }
    for expected in [
        "acm-pca:IssueCertificate",
        "acm-pca:CreateCertificateAuthorityAuditReport",
        "dynamodb:Query",
        "s3:GetObject",
    ] {
        assert!(
            used.contains(expected),
            "the scan of src/ found no {expected}: {used:?}"
        );
    }

    let granted = actions(&read_template());
    assert!(granted.contains("acm-pca:IssueCertificate"), "{granted:?}");

    let excluded: BTreeSet<&str> = NOT_FOR_SERVICE_ROLES.iter().map(|(a, _)| *a).collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|a| !granted.contains(*a) && !excluded.contains(a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "src/ calls {missing:?}, which {TEMPLATE}'s policies do not grant"
    );
}

/// Granted somewhere is not enough: the role that runs a command must hold every call of its path.
#[test]
fn each_command_s_calls_are_granted_by_the_policy_of_its_role() {
    let template = read_template();
    let all = functions(root());
    let mut failures = Vec::new();
    for c in COMMANDS {
        let used = reachable_actions(root(), &all, c.entry.0, c.entry.1);
        for e in c.expected {
            assert!(
                used.contains(*e),
                "`{}`: the call graph from {}::{} did not reach {e}: {used:?}",
                c.name,
                c.entry.0,
                c.entry.1
            );
        }
        let granted = actions(resource(&template, c.policy));
        for a in &used {
            let excused = c.not_granted.iter().any(|(x, _)| x == a);
            if !granted.contains(a) && !excused {
                failures.push(format!(
                    "`{}` calls {a}, which {} does not grant",
                    c.name, c.policy
                ));
            }
        }
        // an exclusion the code no longer needs is stale
        for (x, why) in c.not_granted {
            assert!(
                used.contains(*x) && !granted.contains(*x),
                "`{}`: stale exclusion of {x} ({why})",
                c.name
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// RevokeCertificate's API reference: "Both AWS Private CA and the IAM principal must have
/// permission to write to the S3 bucket that you specify"; without it the call fails on AWS.
/// The stand-in does not enforce IAM, so this is the only guard. Every policy of the template.
#[test]
fn a_policy_granting_revoke_certificate_also_grants_the_crl_write() {
    let template = read_template();
    let policies: Vec<&str> = template
        .match_indices("\n    Type: AWS::IAM::ManagedPolicy\n")
        .map(|(i, _)| {
            let head = template[..i].rfind("\n  ").unwrap() + 3;
            let name = template[head..i].trim_end_matches(':');
            resource(&template, name)
        })
        .collect();
    let revoking: Vec<&&str> = policies
        .iter()
        .filter(|p| {
            statements(p)
                .iter()
                .any(|s| is_allow_of(s, "acm-pca:RevokeCertificate"))
        })
        .collect();
    assert!(
        revoking
            .iter()
            .any(|p| p.starts_with("  RevocationPolicy:")),
        "RevocationPolicy no longer grants RevokeCertificate: {revoking:?}"
    );
    for p in revoking {
        assert!(
            grants_on(p, "s3:PutObject", &crl_object("IssuingCA")),
            "a policy grants RevokeCertificate but not s3:PutObject on the issuing CA's CRL \
             object {}:\n{p}",
            crl_object("IssuingCA")
        );
        // least privilege: the write names CRL objects exactly, never a prefix or the bucket
        for s in statements(p) {
            if is_allow_of(s, "s3:PutObject") {
                assert!(
                    resource_lines(s)
                        .iter()
                        .all(|l| l.contains(&crl_object("IssuingCA"))
                            || l.contains(&crl_object("IntermediateCA"))
                            || l.trim_end().ends_with("Resource:")),
                    "an S3 write of a revoking policy reaches beyond the CRL objects:\n{s}"
                );
            }
        }
    }
}

#[test]
fn crl_and_audit_policies_grant_what_their_commands_call_on_the_right_resources() {
    let template = read_template();
    let crl = resource(&template, "CrlReadPolicy");
    for action in [
        "acm-pca:DescribeCertificateAuthority",
        "acm-pca:GetCertificateAuthorityCertificate",
    ] {
        assert!(
            grants_on(crl, action, "IssuingCA.Arn"),
            "CrlReadPolicy: {action}"
        );
    }
    assert!(
        grants_on(crl, "s3:GetObject", &crl_object("IssuingCA"))
            && grants_on(crl, "s3:GetObject", &crl_object("IntermediateCA")),
        "CrlReadPolicy must read both CAs' CRL objects:\n{crl}"
    );

    let audit = resource(&template, "AuditPolicy");
    for action in [
        "acm-pca:CreateCertificateAuthorityAuditReport",
        "acm-pca:DescribeCertificateAuthorityAuditReport",
    ] {
        assert!(
            grants_on(audit, action, "IssuingCA.Arn"),
            "AuditPolicy: {action}"
        );
    }
    assert!(
        grants_on(
            audit,
            "s3:GetObject",
            "[\"${AuditReportBucket.Arn}/audit-report/${CaId}/*\", \
             {CaId: !Select [1, !Split [\"/\", !Ref IssuingCA]]}]"
        ),
        "{audit}"
    );
    for action in ["dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem"] {
        assert!(
            grants_on(audit, action, "RegistryTable.Arn"),
            "AuditPolicy: {action}"
        );
    }

    // PCA itself may write the reports: the bucket policy names its service principal
    let bucket_policy = resource(&template, "AuditReportBucketPolicy");
    assert!(
        bucket_policy.contains("Principal: {Service: acm-pca.amazonaws.com}")
            && grants_on(bucket_policy, "s3:PutObject", "/audit-report/*")
            && grants_on(bucket_policy, "s3:GetBucketAcl", "AuditReportBucket.Arn"),
        "{bucket_policy}"
    );
}
