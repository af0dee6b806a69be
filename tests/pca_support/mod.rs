//! Shared set-up for the pca/provision tests: a SoftHSM token in a temp dir (common::TestToken),
//! the local AWS stand-in (common::standin), a fresh CA hierarchy, and a registry table of the
//! test's own, all driven through the real `hsm-demo` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicU32, Ordering};

use assert_cmd::Command;

use crate::common::standin::{self, Hierarchy};
use crate::common::{stdout_of, TestToken};

/// One test's world.
pub struct PcaEnv {
    /// Token (and scratch temp dir).
    pub token: TestToken,
    /// AWS endpoint.
    pub endpoint: String,
    /// CA hierarchy (issuing CA = `ca()`).
    pub hier: Hierarchy,
    /// Registry table of this test.
    pub table: String,
    /// Access key id of this test (scopes the stand-in's switches).
    pub akid: String,
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

impl PcaEnv {
    /// Token + new CA hierarchy + new table (created with `pca init-table`).
    pub fn new() -> PcaEnv {
        let endpoint = standin::endpoint();
        let hier = standin::create_active_hierarchy_blocking(&endpoint);
        let env = PcaEnv {
            token: TestToken::new("pca"),
            endpoint,
            hier,
            table: unique("reg"),
            akid: unique("AKIDPCA").replace('-', "").to_uppercase(),
        };
        env.cmd().args(["pca", "init-table"]).assert().success();
        std::fs::write(env.path("root.pem"), &env.hier.root_pem).unwrap();
        env
    }

    /// The issuing CA's ARN.
    pub fn ca(&self) -> &str {
        &self.hier.issuing_arn
    }

    /// A path in the scratch dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.token.path(name)
    }

    /// The binary with HSM env (token, PIN) and AWS env (endpoint, region, this test's key, table).
    pub fn cmd(&self) -> Command {
        let mut c = self.token.cmd();
        aws_env(&mut c, &self.endpoint, &self.akid, &self.table);
        c
    }

    /// Same as [`cmd`](Self::cmd) as a std Command (for spawning / killing).
    pub fn std_cmd(&self) -> StdCommand {
        let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("hsm-demo"));
        for (k, v) in self.token.module_env() {
            c.env(k, v);
        }
        c.env("HSM_DEMO_MODULE", self.token.kind.module_path());
        c.env("HSM_DEMO_PIN", &self.token.pin);
        c.env("HSM_DEMO_TOKEN", &self.token.label);
        c.env_remove("RUST_LOG");
        for k in AWS_VARS_TO_CLEAR {
            c.env_remove(k);
        }
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", standin::REGION)
            .env("AWS_ACCESS_KEY_ID", &self.akid)
            .env("AWS_SECRET_ACCESS_KEY", standin::SECRET_KEY)
            .env("HSM_DEMO_TABLE", &self.table)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c.current_dir(self.token.dir.path());
        c
    }

    /// The library's AWS clients for this test's endpoint and access key (in-process use).
    pub fn clients(&self) -> hsm_demo::pca::aws::AwsClients {
        let conf = standin::sdk_config_with_key(&self.endpoint, &self.akid);
        hsm_demo::pca::aws::AwsClients {
            pca: aws_sdk_acmpca::Client::new(&conf),
            ddb: aws_sdk_dynamodb::Client::new(&conf),
            region: standin::REGION.into(),
            pca_endpoint: self.endpoint.clone(),
            ddb_endpoint: self.endpoint.clone(),
        }
    }

    /// An S3 client for this test's endpoint and access key (path-style, as the tool uses).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = standin::sdk_config_with_key(&self.endpoint, &self.akid);
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
    }

    /// Creates `bucket` and enables CRLs on `ca` into it (the stand-in publishes one at once, as
    /// PCA does when CRLs are enabled on an ACTIVE CA).
    pub fn enable_crl(&self, ca: &str, bucket: &str) {
        use aws_sdk_acmpca::types::{CrlConfiguration, RevocationConfiguration};
        let clients = self.clients();
        let s3 = self.s3();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let _ = s3.create_bucket().bucket(bucket).send().await;
            let crl = CrlConfiguration::builder()
                .enabled(true)
                .s3_bucket_name(bucket)
                .expiration_in_days(7)
                .build()
                .unwrap();
            clients
                .pca
                .update_certificate_authority()
                .certificate_authority_arn(ca)
                .revocation_configuration(
                    RevocationConfiguration::builder()
                        .crl_configuration(crl)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        });
    }

    /// A current-thread runtime and an [`Issuer`](hsm_demo::pca::Issuer) on this test's issuing
    /// CA and table (default options), for tests that drive the library in-process.
    pub fn issuer(
        &self,
        clients: &hsm_demo::pca::aws::AwsClients,
    ) -> (tokio::runtime::Runtime, hsm_demo::pca::Issuer) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ca = hsm_demo::pca::CaArn::parse(self.ca()).unwrap();
        let issuer = rt
            .block_on(hsm_demo::pca::Issuer::new(
                clients,
                &self.table,
                &ca,
                hsm_demo::pca::IssueOptions::default(),
            ))
            .expect("issuer");
        (rt, issuer)
    }

    /// A P-256 key and CSR made by openssl outside the HSM: `<name>.key`, `<name>.csr` (subject
    /// `CN=<cn>`) in the scratch dir (asserts success).
    pub fn openssl_csr(&self, name: &str, cn: &str) {
        self.openssl_req(&format!("{name}.key"), &format!("{name}.csr"), cn, &[]);
    }

    /// `openssl req -new` with a fresh P-256 key: key file `key`, CSR file `out` (PEM, or what
    /// `extra` asks for, e.g. `-outform DER`), subject `CN=<cn>`, in the scratch dir.
    pub fn openssl_req(&self, key: &str, out: &str, cn: &str, extra: &[&str]) {
        let subj = format!("/CN={cn}");
        let o = self
            .token
            .tool("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-keyout", key, "-out", out, "-subj", &subj])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `hsm-demo --json list-slots --objects`, parsed (asserts success).
    pub fn objects_json(&self) -> serde_json::Value {
        let a = self
            .cmd()
            .args(["--json", "list-slots", "--objects"])
            .assert()
            .success();
        serde_json::from_str(&stdout_of(&a)).unwrap()
    }

    /// pkcs11-tool on this test's token, logged in, with `args` (asserts success).
    pub fn pkcs11_tool(&self, args: &[&str]) {
        let out = self
            .token
            .tool("pkcs11-tool")
            .arg("--module")
            .arg(self.token.kind.module_path())
            .args([
                "--token-label",
                &self.token.label,
                "--login",
                "--pin",
                &self.token.pin,
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A P-256 key pair made by pkcs11-tool (not hsm-demo) with this label and CKA_ID (hex).
    pub fn pkcs11_tool_keypair(&self, label: &str, id_hex: &str) {
        self.pkcs11_tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            label,
            "--id",
            id_hex,
        ]);
    }

    /// `pca revoke --serial <serial> --reason <reason>` (asserts success).
    pub fn revoke(&self, serial: &str, reason: &str) {
        self.cmd()
            .args(["pca", "revoke", "--serial", serial, "--reason", reason])
            .assert()
            .success();
    }

    /// `export-pubkey --label <label>`: the public key's PEM (asserts success).
    pub fn pubkey_pem(&self, label: &str) -> String {
        let a = self
            .cmd()
            .args(["export-pubkey", "--label", label])
            .assert()
            .success();
        stdout_of(&a).trim().to_string()
    }

    /// Private keys labelled `label` on the token (`list-slots --objects --json`).
    pub fn private_keys_labelled(&self, label: &str) -> usize {
        self.private_key_ids(label).len()
    }

    /// The CKA_IDs (hex) of the private keys labelled `label` (`list-slots --objects --json`).
    pub fn private_key_ids(&self, label: &str) -> Vec<String> {
        fn walk(v: &serde_json::Value, label: &str, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    let class = m.get("class").and_then(|c| c.as_str()).unwrap_or("");
                    if m.get("label").and_then(|l| l.as_str()) == Some(label)
                        && class.contains("private")
                    {
                        let id = m.get("id").and_then(|i| i.as_str()).unwrap_or("");
                        out.push(id.to_string());
                    }
                    m.values().for_each(|x| walk(x, label, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, label, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.objects_json(), label, &mut out);
        out
    }

    /// `provision --ca-arn <ca> --device-id <id>` on this test's token and table, to add flags to.
    pub fn provision_cmd(&self, device: &str) -> Command {
        let mut c = self.cmd();
        c.args(["provision", "--ca-arn", self.ca(), "--device-id", device]);
        c
    }

    /// `--json provision --ca-arn <ca> --device-id <id>` → parsed JSON (asserts success).
    pub fn provision(&self, device: &str) -> serde_json::Value {
        let a = self
            .cmd()
            .arg("--json")
            .args(["provision", "--ca-arn", self.ca(), "--device-id", device])
            .assert()
            .success();
        serde_json::from_str(&stdout_of(&a)).expect("provision --json prints JSON")
    }

    /// `pca show --device-id <id> --json` → parsed JSON (asserts success).
    pub fn show(&self, device: &str) -> serde_json::Value {
        let a = self
            .cmd()
            .args(["--json", "pca", "show", "--device-id", device])
            .assert()
            .success();
        serde_json::from_str(&stdout_of(&a)).expect("pca show --json prints JSON")
    }

    /// All registry items of this test's table, read with the SDK directly (independent of the
    /// code under test).
    pub fn table_items(&self) -> Vec<std::collections::HashMap<String, String>> {
        let conf = standin::sdk_config(&self.endpoint);
        let ddb = aws_sdk_dynamodb::Client::new(&conf);
        let table = self.table.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut out = Vec::new();
                let mut start = None;
                loop {
                    let r = ddb
                        .scan()
                        .table_name(&table)
                        .consistent_read(true)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .expect("scan");
                    for it in r.items() {
                        out.push(
                            it.iter()
                                .map(|(k, v)| {
                                    let s = match v {
                                        aws_sdk_dynamodb::types::AttributeValue::S(s) => s.clone(),
                                        aws_sdk_dynamodb::types::AttributeValue::N(n) => n.clone(),
                                        other => format!("{other:?}"),
                                    };
                                    (k.clone(), s)
                                })
                                .collect(),
                        );
                    }
                    match r.last_evaluated_key() {
                        Some(k) if !k.is_empty() => start = Some(k.clone()),
                        _ => break,
                    }
                }
                out
            })
    }

    /// Items of this table whose sort key starts with `prefix` (e.g. `CERT#`, `CA#`, `INTENT#`).
    pub fn items_with_sk(&self, prefix: &str) -> Vec<std::collections::HashMap<String, String>> {
        self.table_items()
            .into_iter()
            .filter(|i| i.get("sk").is_some_and(|s| s.starts_with(prefix)))
            .collect()
    }

    /// Certificates the stand-in issued from the issuing CA (IssueCertificate calls that created a
    /// new certificate, from its call counters) — independent of the registry.
    pub fn issued_by_ca(&self) -> usize {
        issued_by_ca(&self.endpoint, self.ca())
    }

    /// `openssl verify -CAfile root.pem -untrusted chain cert` in the scratch dir.
    pub fn openssl_verify(&self, cert: &Path, chain: &Path) -> (bool, String) {
        let out = self
            .token
            .tool("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(self.path("root.pem"))
            .arg("-untrusted")
            .arg(chain)
            .arg(cert)
            .output()
            .expect("openssl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

/// Environment variables that must not leak from the developer's shell into tests.
pub const AWS_VARS_TO_CLEAR: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL_ACM_PCA",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "HSM_DEMO_CA_ARN",
    "FAILPOINTS",
];

/// Sets the AWS env of a command.
pub fn aws_env(c: &mut Command, endpoint: &str, akid: &str, table: &str) {
    for k in AWS_VARS_TO_CLEAR {
        c.env_remove(k);
    }
    c.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", standin::REGION)
        .env("AWS_ACCESS_KEY_ID", akid)
        .env("AWS_SECRET_ACCESS_KEY", standin::SECRET_KEY)
        .env("HSM_DEMO_TABLE", table)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // no ~/.aws of the developer
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
}

/// See [`PcaEnv::issued_by_ca`]: the stand-in's count of IssueCertificate calls to `ca_arn`
/// that created a new certificate (`GET /_standin/stats`).
pub fn issued_by_ca(endpoint: &str, ca_arn: &str) -> usize {
    standin::issued_count(endpoint, ca_arn) as usize
}

/// SHA-256 of a file's DER-decoded PEM contents (to compare certificates).
pub fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    pem::parse(text).expect("PEM").contents().to_vec()
}

/// GET `path` from `endpoint` (plain HTTP/1.1, Connection: close; handles chunked bodies).
pub fn http_get(endpoint: &str, path: &str) -> String {
    // moto's state dump can fail (HTTP 500) while other tests' requests mutate the backend
    // concurrently: retry that read a few times.
    let mut last = String::new();
    for attempt in 0..20u64 {
        match http_get_once(endpoint, path) {
            Ok(body) => return body,
            Err(e) => last = e,
        }
        std::thread::sleep(std::time::Duration::from_millis(20 * (attempt + 1)));
    }
    panic!("GET {path}: {last}");
}

fn http_get_once(endpoint: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let hostport = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, r)| r)
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&hostport).expect("connect to the stand-in");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    if !(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")) {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("chunk size hex");
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        Ok(out)
    } else {
        Ok(body.to_string())
    }
}

impl PcaEnv {
    /// Like [`PcaEnv::new`] with the token on module `kind` (tests that iterate
    /// `ModuleKind::enabled()`).
    pub fn with_kind(kind: crate::common::ModuleKind) -> PcaEnv {
        Self::with_token(TestToken::with_kind(kind, "pca"))
    }

    /// Like [`PcaEnv::new`] on a token the caller initialised (e.g. with a PIN of its own).
    pub fn with_token(token: TestToken) -> PcaEnv {
        let endpoint = standin::endpoint();
        let hier = standin::create_active_hierarchy_blocking(&endpoint);
        let env = PcaEnv {
            token,
            endpoint,
            hier,
            table: unique("reg"),
            akid: unique("AKIDPCA").replace('-', "").to_uppercase(),
        };
        env.cmd().args(["pca", "init-table"]).assert().success();
        std::fs::write(env.path("root.pem"), &env.hier.root_pem).unwrap();
        env
    }
}
