//! The serial registry in DynamoDB (schema: docs/registry-schema.md).
//!
//! One table, key `pk` (S) + `sk` (S), no GSI:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `DEVICE#<id>` | `CURRENT` | the device's current certificate (pointer + status) |
//! | `DEVICE#<id>` | `CERT#<gen:06>` | history: one item per certificate ever issued to the device (with PEMs) |
//! | `DEVICE#<id>` | `INTENT#<gen:06>` | the issuance intent for generation `gen` (PENDING → ISSUING → ISSUED) |
//! | `SERIAL#<serial>` | `CA#<ca_arn>` | serial marker: unique per CA by `attribute_not_exists(pk)` |
//! | `KEY#<spki sha256>` | `COMPROMISED` | a public key revoked for key-compromise: never certified again |
//! | `KEY#<spki sha256>` | `DEVICE` | the device a public key is certified for: one key, one device |
//! | `DEVICE#<id>` | `DECOMMISSIONED` | `pca decommission` ran (IN_PROGRESS → DONE): `provision` refuses the device |
//!
//! Everything about a device is one strongly consistent Query on `pk = DEVICE#<id>`; a serial is
//! one Query on `pk = SERIAL#<serial>` (one item per CA that issued that serial). An issue is
//! recorded in ONE TransactWriteItems: serial marker + history + CURRENT + intent→ISSUED.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{error_code, map_sdk_error, AwsClients, Service};
use crate::pca::ids::{DeviceId, Serial};

/// Default table name.
pub const DEFAULT_TABLE: &str = "hsm-demo-registry";

type Item = HashMap<String, AttributeValue>;

mod renewal;
mod serials;
pub use renewal::{status_index as renewal_status_index, Inventory};

pub use crate::pca::records::{
    CertRecord, CertStatus, CompromisedKey, Decommission, DeviceState, Intent, IntentState,
    IssueParams, SerialRecord,
};

/// Outcome of a conditional write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The write happened.
    Yes,
    /// The condition failed (someone else got there first).
    ConditionFailed,
}

/// An operation error that can say "the write's condition did not hold".
trait ConditionFailure: ProvideErrorMetadata {
    /// A single-item write: `ConditionalCheckFailedException`.
    fn condition_failed(&self) -> bool {
        self.code() == Some("ConditionalCheckFailedException")
    }
}

impl ConditionFailure for PutItemError {}
impl ConditionFailure for UpdateItemError {}
impl ConditionFailure for DeleteItemError {}

impl ConditionFailure for TransactWriteItemsError {
    /// A transaction: cancelled with a `ConditionalCheckFailed` reason.
    fn condition_failed(&self) -> bool {
        matches!(self, TransactWriteItemsError::TransactionCanceledException(tc)
            if tc
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed")))
    }
}

/// A handle on the registry table.
#[derive(Clone, Debug)]
pub struct Registry {
    clients: AwsClients,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_s(it: &Item, k: &str) -> Option<String> {
    match it.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}
fn get_n(it: &Item, k: &str) -> Option<i64> {
    match it.get(k) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// `DEVICE#<id>`.
pub fn device_pk(id: &str) -> String {
    format!("DEVICE#{id}")
}
/// `INTENT#<gen:06>`.
pub fn intent_sk(generation: u32) -> String {
    format!("INTENT#{generation:06}")
}
/// `CERT#<gen:06>`.
pub fn cert_sk(generation: u32) -> String {
    format!("CERT#{generation:06}")
}
/// `KEY#<spki sha256>`: the compromised-key item's partition.
pub fn key_pk(spki_sha256: &str) -> String {
    format!("KEY#{spki_sha256}")
}

/// Sort key of the compromised-key item.
pub const COMPROMISED_SK: &str = "COMPROMISED";

/// Sort key of the item binding a public key to its device (same partition as
/// [`COMPROMISED_SK`]).
pub const KEY_DEVICE_SK: &str = "DEVICE";

/// Sort key of a device's decommissioning marker.
pub const DECOMMISSIONED_SK: &str = "DECOMMISSIONED";

/// `SERIAL#<serial>`.
pub fn serial_pk(serial: &str) -> String {
    format!("SERIAL#{serial}")
}
/// `CA#<arn>`.
pub fn ca_sk(arn: &str) -> String {
    format!("CA#{arn}")
}

/// RFC 3339 of a time (UTC, seconds).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn cert_item(r: &CertRecord, with_pem: bool) -> Item {
    let mut it = Item::new();
    it.insert("device_id".into(), s(&r.device_id));
    it.insert("generation".into(), n(r.generation));
    it.insert("serial".into(), s(&r.serial));
    it.insert("ca_arn".into(), s(&r.ca_arn));
    it.insert("cert_arn".into(), s(&r.cert_arn));
    it.insert("status".into(), s(r.status.as_str()));
    it.insert("not_before".into(), s(&r.not_before));
    it.insert("not_after".into(), s(&r.not_after));
    it.insert("issued_at".into(), s(&r.issued_at));
    it.insert("token".into(), s(&r.token));
    it.insert("template_arn".into(), s(&r.template_arn));
    if let Some(v) = &r.revoked_at {
        it.insert("revoked_at".into(), s(v));
    }
    if let Some(v) = &r.revocation_reason {
        it.insert("revocation_reason".into(), s(v));
    }
    if let Some(v) = &r.recorded_by {
        it.insert("recorded_by".into(), s(v));
    }
    if with_pem {
        if let Some(v) = &r.cert_pem {
            it.insert("cert_pem".into(), s(v));
        }
        if let Some(v) = &r.chain_pem {
            it.insert("chain_pem".into(), s(v));
        }
    }
    it
}

fn parse_cert(it: &Item) -> Option<CertRecord> {
    Some(CertRecord {
        device_id: get_s(it, "device_id")?,
        generation: u32::try_from(get_n(it, "generation")?).ok()?,
        serial: get_s(it, "serial")?,
        ca_arn: get_s(it, "ca_arn")?,
        cert_arn: get_s(it, "cert_arn")?,
        status: CertStatus::parse(&get_s(it, "status")?)?,
        not_before: get_s(it, "not_before").unwrap_or_default(),
        not_after: get_s(it, "not_after").unwrap_or_default(),
        issued_at: get_s(it, "issued_at").unwrap_or_default(),
        revoked_at: get_s(it, "revoked_at"),
        revocation_reason: get_s(it, "revocation_reason"),
        token: get_s(it, "token").unwrap_or_default(),
        template_arn: get_s(it, "template_arn").unwrap_or_default(),
        cert_pem: get_s(it, "cert_pem"),
        chain_pem: get_s(it, "chain_pem"),
        recorded_by: get_s(it, "recorded_by"),
    })
}

fn parse_intent(it: &Item) -> Option<Intent> {
    let params = match get_s(it, "token") {
        Some(token) => Some(IssueParams {
            token,
            csr_sha256: get_s(it, "csr_sha256")?,
            template_arn: get_s(it, "template_arn")?,
            signing_algorithm: get_s(it, "signing_algorithm")?,
            validity_type: get_s(it, "validity_type")?,
            validity_value: get_n(it, "validity_value")?,
        }),
        None => None,
    };
    Some(Intent {
        device_id: get_s(it, "device_id")?,
        generation: u32::try_from(get_n(it, "generation")?).ok()?,
        state: IntentState::parse(&get_s(it, "state")?)?,
        ca_arn: get_s(it, "ca_arn")?,
        owner: get_s(it, "owner").unwrap_or_default(),
        lease_until: get_n(it, "lease_until").unwrap_or(0),
        created_at: get_s(it, "created_at").unwrap_or_default(),
        created_epoch: get_n(it, "created_epoch").unwrap_or(0),
        params,
        cert_arn: get_s(it, "cert_arn"),
        serial: get_s(it, "serial"),
        previous_owners: match it.get("previous_owners") {
            Some(AttributeValue::Ss(v)) => v.clone(),
            _ => Vec::new(),
        },
    })
}

fn parse_serial(it: &Item) -> Option<SerialRecord> {
    Some(SerialRecord {
        serial: get_s(it, "serial")?,
        ca_arn: get_s(it, "ca_arn")?,
        device_id: get_s(it, "device_id")?,
        generation: u32::try_from(get_n(it, "generation")?).ok()?,
        cert_arn: get_s(it, "cert_arn")?,
        status: CertStatus::parse(&get_s(it, "status")?)?,
        issued_at: get_s(it, "issued_at").unwrap_or_default(),
        not_after: get_s(it, "not_after").unwrap_or_default(),
        revoked_at: get_s(it, "revoked_at"),
    })
}

fn build_err(e: impl std::fmt::Display) -> Error {
    Error::Registry(format!("internal error building a DynamoDB request: {e}"))
}

impl Registry {
    /// A handle on `table`.
    pub fn new(clients: &AwsClients, table: &str) -> Self {
        Registry {
            clients: clients.clone(),
            table: table.to_string(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn map<E, R>(&self, op: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> Error
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        if error_code(&e) == Some("ResourceNotFoundException") {
            return self.missing_table();
        }
        match map_sdk_error(&self.clients, Service::Ddb, op, e) {
            Error::Aws { message, .. } => Error::Registry(message),
            other => other,
        }
    }

    /// The result of a conditional write: [`Written::ConditionFailed`] when DynamoDB refused it
    /// on its condition, the mapped error for any other failure.
    fn written<T, E, R>(
        &self,
        op: &str,
        res: std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    ) -> Result<Written>
    where
        E: ConditionFailure + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match res {
            Ok(_) => Ok(Written::Yes),
            Err(e) if e.as_service_error().is_some_and(E::condition_failed) => {
                Ok(Written::ConditionFailed)
            }
            Err(e) => Err(self.map(op, e)),
        }
    }

    fn missing_table(&self) -> Error {
        Error::Registry(format!(
            "registry table '{}' not found in region {} at {}: create it with `hsm-demo pca init-table` (or deploy infra/)",
            self.table, self.clients.region, self.clients.ddb_endpoint
        ))
    }

    /// Creates the table (on-demand, `pk`/`sk` strings) if absent and waits until it is ACTIVE.
    /// Returns `true` if it was created now.
    pub async fn init_table(&self) -> Result<bool> {
        let key = |name: &str, kt: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kt)
                .build()
                .map_err(build_err)
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)
        };
        let res = self
            .clients
            .ddb
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .send()
            .await;
        let created = match res {
            Ok(_) => true,
            Err(e) if error_code(&e) == Some("ResourceInUseException") => false,
            Err(e) => return Err(self.map("CreateTable", e)),
        };
        use aws_sdk_dynamodb::client::Waiters;
        self.clients
            .ddb
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(std::time::Duration::from_secs(120))
            .await
            .map_err(|e| {
                Error::Registry(format!("table '{}' did not become ACTIVE: {e}", self.table))
            })?;
        Ok(created)
    }

    /// Fails with one line if the table does not exist: a Query on a key no item has (the
    /// provisioning role's IAM policy grants Query on the table, not DescribeTable).
    pub async fn check_table(&self) -> Result<()> {
        self.clients
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s("TABLE-CHECK".to_string()))
            .limit(1)
            .send()
            .await
            .map_err(|e| self.map("Query", e))?;
        Ok(())
    }

    /// Everything about a device: ONE strongly consistent Query on `pk = DEVICE#<id>`.
    pub async fn device(&self, id: &DeviceId) -> Result<DeviceState> {
        let items = self
            .clients
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(device_pk(id.as_str())))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.map("Query", e))?;
        let mut state = DeviceState {
            items: items.len(),
            ..DeviceState::default()
        };
        for it in &items {
            let sk = get_s(it, "sk").unwrap_or_default();
            let bad = || {
                Error::Registry(format!(
                    "malformed registry item {}/{sk} in table '{}'",
                    device_pk(id.as_str()),
                    self.table
                ))
            };
            if sk == "CURRENT" {
                state.current = Some(parse_cert(it).ok_or_else(bad)?);
            } else if sk.starts_with("CERT#") {
                state.history.push(parse_cert(it).ok_or_else(bad)?);
            } else if sk.starts_with("INTENT#") {
                state.intents.push(parse_intent(it).ok_or_else(bad)?);
            } else if sk == DECOMMISSIONED_SK {
                state.decommissioned = Some(Decommission {
                    done: get_s(it, "state").as_deref() == Some("DONE"),
                    reason: get_s(it, "reason").unwrap_or_default(),
                    started_at: get_s(it, "started_at").unwrap_or_default(),
                });
            }
        }
        Ok(state)
    }

    /// The serial markers for `serial` (one per CA that issued it): ONE Query on `pk = SERIAL#<serial>`.
    pub async fn by_serial(&self, serial: &Serial) -> Result<Vec<SerialRecord>> {
        let out = self
            .clients
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(serial_pk(serial.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.map("Query", e))?;
        out.items()
            .iter()
            .map(|it| {
                parse_serial(it)
                    .ok_or_else(|| Error::Registry(format!("malformed serial marker for {serial}")))
            })
            .collect()
    }

    /// Current certificates of all devices, optionally filtered by status (a paginated Scan:
    /// listing is the one operation that is not a key look-up).
    pub async fn list(&self, status: Option<CertStatus>) -> Result<Vec<CertRecord>> {
        let req = self
            .clients
            .ddb
            .scan()
            .table_name(&self.table)
            .expression_attribute_values(":cur", s("CURRENT"));
        let req = match status {
            Some(st) => req
                .filter_expression("sk = :cur AND #st = :st")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(st.as_str())),
            None => req.filter_expression("sk = :cur"),
        };
        let items = req
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.map("Scan", e))?;
        let mut out_v: Vec<CertRecord> = items.iter().filter_map(parse_cert).collect();
        out_v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(out_v)
    }

    /// Intents not yet ISSUED, across all devices (a paginated Scan; for `pca reconcile`).
    pub async fn open_intents(&self) -> Result<Vec<Intent>> {
        let items = self
            .clients
            .ddb
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(sk, :i) AND #state <> :issued")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":i", s("INTENT#"))
            .expression_attribute_values(":issued", s(IntentState::Issued.as_str()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.map("Scan", e))?;
        let mut v: Vec<Intent> = items.iter().filter_map(parse_intent).collect();
        v.sort_by(|a, b| (&a.device_id, a.generation).cmp(&(&b.device_id, b.generation)));
        Ok(v)
    }

    /// Writes a fresh PENDING intent for `intent.generation`, only if none exists.
    pub async fn put_intent(&self, intent: &Intent) -> Result<Written> {
        let mut it = Item::new();
        it.insert("pk".into(), s(device_pk(&intent.device_id)));
        it.insert("sk".into(), s(intent_sk(intent.generation)));
        it.insert("device_id".into(), s(&intent.device_id));
        it.insert("generation".into(), n(intent.generation));
        it.insert("state".into(), s(IntentState::Pending.as_str()));
        it.insert("ca_arn".into(), s(&intent.ca_arn));
        it.insert("owner".into(), s(&intent.owner));
        it.insert("lease_until".into(), n(intent.lease_until));
        it.insert("created_at".into(), s(&intent.created_at));
        it.insert("created_epoch".into(), n(intent.created_epoch));
        it.insert("updated_at".into(), s(&intent.created_at));
        let res = self
            .clients
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(it))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        self.written("PutItem", res)
    }

    async fn update_intent(
        &self,
        device: &str,
        generation: u32,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Written> {
        let mut req = self
            .clients
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(device)))
            .key("sk", s(intent_sk(generation)))
            .update_expression(update)
            .condition_expression(condition);
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        self.written("UpdateItem", req.send().await)
    }

    /// Takes over a PENDING intent whose owner is `old_owner` (lease expired or owner dead), as
    /// it was read: with the same stored parameters, or still none. A holder whose lease ran out
    /// while it was alive may store its parameters between this runner's read and this write;
    /// taking over regardless would leave this runner deciding on a stale intent (e.g. removing
    /// the key that signed the CSR about to be sent), so the write then fails and the caller
    /// reads again.
    pub async fn take_over_intent(
        &self,
        intent: &Intent,
        new_owner: &str,
        lease_until: i64,
    ) -> Result<Written> {
        let mut values = vec![
            (":new", s(new_owner)),
            (":old", s(&intent.owner)),
            (":lease", n(lease_until)),
            (":now", s(rfc3339(OffsetDateTime::now_utc()))),
            (":pending", s(IntentState::Pending.as_str())),
            (":prev", AttributeValue::Ss(vec![intent.owner.clone()])),
        ];
        let condition = match &intent.params {
            None => "#owner = :old AND #state = :pending AND attribute_not_exists(#token)",
            Some(p) => {
                values.push((":token", s(&p.token)));
                "#owner = :old AND #state = :pending AND #token = :token"
            }
        };
        self.update_intent(
            &intent.device_id,
            intent.generation,
            "SET #owner = :new, lease_until = :lease, updated_at = :now ADD #prev :prev",
            condition,
            &[
                ("#owner", "owner"),
                ("#state", "state"),
                ("#token", "token"),
                ("#prev", "previous_owners"),
            ],
            values,
        )
        .await
    }

    /// Fixes the request parameters (token, CSR hash, validity…) of our PENDING intent, once.
    pub async fn set_intent_params(
        &self,
        intent: &Intent,
        owner: &str,
        p: &IssueParams,
    ) -> Result<Written> {
        self.update_intent(
            &intent.device_id,
            intent.generation,
            "SET #token = :token, csr_sha256 = :csr, template_arn = :tpl, signing_algorithm = :alg, \
             validity_type = :vt, validity_value = :vv, updated_at = :now",
            "#owner = :me AND #state = :pending AND attribute_not_exists(#token)",
            &[("#owner", "owner"), ("#state", "state"), ("#token", "token")],
            vec![
                (":me", s(owner)),
                (":pending", s(IntentState::Pending.as_str())),
                (":token", s(&p.token)),
                (":csr", s(&p.csr_sha256)),
                (":tpl", s(&p.template_arn)),
                (":alg", s(&p.signing_algorithm)),
                (":vt", s(&p.validity_type)),
                (":vv", n(p.validity_value)),
                (":now", s(rfc3339(OffsetDateTime::now_utc()))),
            ],
        )
        .await
    }

    /// Stores the certificate ARN right after IssueCertificate returned: PENDING → ISSUING.
    /// Idempotent for the same ARN.
    pub async fn set_intent_issuing(
        &self,
        intent: &Intent,
        token: &str,
        cert_arn: &str,
    ) -> Result<Written> {
        self.update_intent(
            &intent.device_id,
            intent.generation,
            "SET #state = :issuing, cert_arn = :arn, updated_at = :now",
            "#token = :token AND (#state = :pending OR (#state = :issuing AND cert_arn = :arn))",
            &[("#state", "state"), ("#token", "token")],
            vec![
                (":issuing", s(IntentState::Issuing.as_str())),
                (":pending", s(IntentState::Pending.as_str())),
                (":arn", s(cert_arn)),
                (":token", s(token)),
                (":now", s(rfc3339(OffsetDateTime::now_utc()))),
            ],
        )
        .await
    }

    /// Deletes our PENDING intent after a terminal failure where no certificate exists (nothing
    /// stays recorded).
    pub async fn delete_intent(&self, intent: &Intent, owner: &str) -> Result<Written> {
        let res = self
            .clients
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(&intent.device_id)))
            .key("sk", s(intent_sk(intent.generation)))
            .condition_expression("#owner = :me AND #state <> :issued")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":issued", s(IntentState::Issued.as_str()))
            .send()
            .await;
        self.written("DeleteItem", res)
    }

    /// Records an issued certificate in ONE TransactWriteItems:
    /// serial marker (unique per CA) + history + CURRENT + intent→ISSUED.
    ///
    /// `ConditionFailed` means some condition did not hold — typically a concurrent runner recorded
    /// the same certificate first; the caller re-reads the device to find out.
    pub async fn record_issued(&self, rec: &CertRecord) -> Result<Written> {
        self.record_issued_with_key(rec, None).await
    }

    /// [`record_issued`](Self::record_issued), plus (with `spki_sha256`) the key's
    /// `KEY#<sha256>`/`DEVICE` item in the same transaction, conditional on the key being free or
    /// already this device's: one key, one device.
    pub async fn record_issued_with_key(
        &self,
        rec: &CertRecord,
        spki_sha256: Option<&str>,
    ) -> Result<Written> {
        let dev = device_pk(&rec.device_id);

        let mut marker = Item::new();
        marker.insert("pk".into(), s(serial_pk(&rec.serial)));
        marker.insert("sk".into(), s(ca_sk(&rec.ca_arn)));
        for k in [
            "serial",
            "ca_arn",
            "device_id",
            "generation",
            "cert_arn",
            "status",
            "issued_at",
            "not_after",
        ] {
            if let Some(v) = cert_item(rec, false).remove(k) {
                marker.insert(k.into(), v);
            }
        }
        let marker = Put::builder()
            .table_name(&self.table)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;

        let mut hist = cert_item(rec, true);
        hist.insert("pk".into(), s(&dev));
        hist.insert("sk".into(), s(cert_sk(rec.generation)));
        let hist = Put::builder()
            .table_name(&self.table)
            .set_item(Some(hist))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;

        let mut cur = cert_item(rec, false);
        cur.insert("pk".into(), s(&dev));
        cur.insert("sk".into(), s("CURRENT"));
        let cur = Put::builder()
            .table_name(&self.table)
            .set_item(Some(cur))
            .condition_expression(
                "attribute_not_exists(pk) OR (generation < :gen AND #st = :revoked)",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":gen", n(rec.generation))
            .expression_attribute_values(":revoked", s(CertStatus::Revoked.as_str()))
            .build()
            .map_err(build_err)?;

        let intent = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&dev))
            .key("sk", s(intent_sk(rec.generation)))
            .update_expression(
                "SET #state = :issued, serial = :serial, cert_arn = :arn, updated_at = :now REMOVE lease_until",
            )
            .condition_expression("#token = :token AND (#state = :pending OR #state = :issuing)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":issued", s(IntentState::Issued.as_str()))
            .expression_attribute_values(":pending", s(IntentState::Pending.as_str()))
            .expression_attribute_values(":issuing", s(IntentState::Issuing.as_str()))
            .expression_attribute_values(":serial", s(&rec.serial))
            .expression_attribute_values(":arn", s(&rec.cert_arn))
            .expression_attribute_values(":token", s(&rec.token))
            .expression_attribute_values(":now", s(&rec.issued_at))
            .build()
            .map_err(build_err)?;

        let res = self
            .clients
            .ddb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().put(hist).build())
            .transact_items(TransactWriteItem::builder().put(cur).build())
            .transact_items(TransactWriteItem::builder().update(intent).build());
        let res = match spki_sha256 {
            Some(k) => res.transact_items(
                TransactWriteItem::builder()
                    .put(self.key_device_put(k, rec)?)
                    .build(),
            ),
            None => res,
        }
        .send()
        .await;
        self.written("TransactWriteItems", res)
    }

    /// The compromised-key item for a public key (SHA-256 of its DER SPKI), if any: one strongly
    /// consistent GetItem.
    pub async fn compromised_key(&self, spki_sha256: &str) -> Result<Option<CompromisedKey>> {
        let out = self
            .clients
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_pk(spki_sha256)))
            .key("sk", s(COMPROMISED_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.map("GetItem", e))?;
        Ok(out.item().map(|it| CompromisedKey {
            spki_sha256: spki_sha256.to_string(),
            serial: get_s(it, "serial").unwrap_or_default(),
            ca_arn: get_s(it, "ca_arn").unwrap_or_default(),
            device_id: get_s(it, "device_id").unwrap_or_default(),
            recorded_at: get_s(it, "recorded_at").unwrap_or_default(),
        }))
    }

    /// Records a public key as compromised, unless it already is (the first declaration is kept;
    /// writing it again is a no-op, so a rerun of `pca revoke` is harmless).
    pub async fn record_compromised_key(&self, k: &CompromisedKey) -> Result<Written> {
        let res = self
            .clients
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key_pk(&k.spki_sha256)))
            .item("sk", s(COMPROMISED_SK))
            .item("spki_sha256", s(&k.spki_sha256))
            .item("serial", s(&k.serial))
            .item("ca_arn", s(&k.ca_arn))
            .item("device_id", s(&k.device_id))
            .item("recorded_at", s(&k.recorded_at))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        self.written("PutItem", res)
    }

    /// The `KEY#<sha256>`/`DEVICE` item of `rec`'s key (see [`record_issued_with_key`](Self::record_issued_with_key)).
    fn key_device_put(&self, spki_sha256: &str, rec: &CertRecord) -> Result<Put> {
        Put::builder()
            .table_name(&self.table)
            .item("pk", s(key_pk(spki_sha256)))
            .item("sk", s(KEY_DEVICE_SK))
            .item("spki_sha256", s(spki_sha256))
            .item("device_id", s(&rec.device_id))
            .item("serial", s(&rec.serial))
            .item("ca_arn", s(&rec.ca_arn))
            .item("recorded_at", s(&rec.issued_at))
            .condition_expression("attribute_not_exists(pk) OR device_id = :dev")
            .expression_attribute_values(":dev", s(&rec.device_id))
            .build()
            .map_err(build_err)
    }

    /// The device a public key (SHA-256 of its DER SPKI) is certified for, if any: one strongly
    /// consistent GetItem.
    pub async fn key_device(&self, spki_sha256: &str) -> Result<Option<String>> {
        let out = self
            .clients
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key_pk(spki_sha256)))
            .key("sk", s(KEY_DEVICE_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.map("GetItem", e))?;
        Ok(out.item().and_then(|it| get_s(it, "device_id")))
    }

    /// For `provision --plan`: the `CURRENT`, `DECOMMISSIONED` and `INTENT#000000` items of up to
    /// 33 devices, by (pk, sk), in BatchGetItem calls (strongly consistent; unprocessed keys are
    /// asked again).
    pub async fn plan_items<'a>(
        &self,
        devices: impl Iterator<Item = &'a DeviceId>,
    ) -> Result<HashMap<(String, String), Item>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut keys = Vec::new();
        for d in devices {
            for sk in [
                "CURRENT".to_string(),
                DECOMMISSIONED_SK.to_string(),
                intent_sk(0),
            ] {
                keys.push(HashMap::from([
                    ("pk".to_string(), s(device_pk(d.as_str()))),
                    ("sk".to_string(), s(sk)),
                ]));
            }
        }
        let mut found = HashMap::new();
        let mut backoff = std::time::Duration::from_millis(20);
        while !keys.is_empty() {
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(build_err)?;
            let out = self
                .clients
                .ddb
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(|e| self.map("BatchGetItem", e))?;
            let got = out.responses().and_then(|r| r.get(&self.table));
            for it in got.into_iter().flatten() {
                if let (Some(pk), Some(sk)) = (get_s(it, "pk"), get_s(it, "sk")) {
                    found.insert((pk, sk), it.clone());
                }
            }
            if let Some(u) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                keys = u.keys().to_vec();
                if !keys.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
        Ok(found)
    }

    /// Writes the device's decommissioning marker (IN_PROGRESS) unless one exists. An UpdateItem
    /// that creates the item: the revocation role may update any registry item but put only
    /// `KEY#…` items (infra/'s `RevocationPolicy`).
    pub async fn put_decommission(&self, device: &DeviceId, reason: &str) -> Result<Written> {
        let res = self
            .clients
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(device.as_str())))
            .key("sk", s(DECOMMISSIONED_SK))
            .update_expression(
                "SET device_id = :dev, #state = :state, reason = :reason, started_at = :now",
            )
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":dev", s(device.as_str()))
            .expression_attribute_values(":state", s("IN_PROGRESS"))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(rfc3339(OffsetDateTime::now_utc())))
            .send()
            .await;
        self.written("UpdateItem", res)
    }

    /// Marks the device's decommissioning DONE (idempotent).
    pub async fn finish_decommission(&self, device: &DeviceId) -> Result<Written> {
        let res = self
            .clients
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(device.as_str())))
            .key("sk", s(DECOMMISSIONED_SK))
            .update_expression("SET #state = :done, finished_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("DONE"))
            .expression_attribute_values(":now", s(rfc3339(OffsetDateTime::now_utc())))
            .send()
            .await;
        self.written("UpdateItem", res)
    }

    /// Removes a finished decommissioning marker (`provision --recommission`).
    pub async fn clear_decommission(&self, device: &DeviceId) -> Result<Written> {
        let res = self
            .clients
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(device_pk(device.as_str())))
            .key("sk", s(DECOMMISSIONED_SK))
            .condition_expression("#state = :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("DONE"))
            .send()
            .await;
        self.written("DeleteItem", res)
    }

    /// Records a revocation in ONE TransactWriteItems: serial marker + history (+ CURRENT when the
    /// revoked certificate is the device's current one). An ISSUED or SUPERSEDED certificate can be
    /// revoked.
    pub async fn record_revoked(
        &self,
        marker: &SerialRecord,
        reason: &str,
        is_current: bool,
    ) -> Result<Written> {
        let now = rfc3339(OffsetDateTime::now_utc());
        let upd = |pk: String, sk: String, cond: &str| {
            let mut b = Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression(
                    "SET #st = :revoked, revoked_at = :now, revocation_reason = :reason",
                )
                .condition_expression(cond)
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":revoked", s(CertStatus::Revoked.as_str()))
                .expression_attribute_values(":issued", s(CertStatus::Issued.as_str()))
                .expression_attribute_values(":superseded", s(CertStatus::Superseded.as_str()))
                .expression_attribute_values(":now", s(&now))
                .expression_attribute_values(":reason", s(reason));
            if cond.contains(":serial") {
                b = b.expression_attribute_values(":serial", s(&marker.serial));
            }
            b.build().map_err(build_err)
        };
        let mut req = self
            .clients
            .ddb
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(upd(
                        serial_pk(&marker.serial),
                        ca_sk(&marker.ca_arn),
                        "#st IN (:issued, :superseded)",
                    )?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(upd(
                        device_pk(&marker.device_id),
                        cert_sk(marker.generation),
                        "#st IN (:issued, :superseded) AND serial = :serial",
                    )?)
                    .build(),
            );
        if is_current {
            req = req.transact_items(
                TransactWriteItem::builder()
                    .update(upd(
                        device_pk(&marker.device_id),
                        "CURRENT".into(),
                        "#st IN (:issued, :superseded) AND serial = :serial",
                    )?)
                    .build(),
            );
        }
        self.written("TransactWriteItems", req.send().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn condition_failures_are_told_by_code_for_items_and_by_reason_for_transactions() {
        let tx = |code: &str| {
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .cancellation_reasons(CancellationReason::builder().code("None").build())
                    .cancellation_reasons(CancellationReason::builder().code(code).build())
                    .build(),
            )
        };
        assert!(tx("ConditionalCheckFailed").condition_failed());
        assert!(!tx("TransactionConflict").condition_failed());
        let put = |code: &str| PutItemError::generic(ErrorMetadata::builder().code(code).build());
        assert!(put("ConditionalCheckFailedException").condition_failed());
        assert!(!put("ProvisionedThroughputExceededException").condition_failed());
        let upd = UpdateItemError::generic(
            ErrorMetadata::builder()
                .code("ConditionalCheckFailedException")
                .build(),
        );
        assert!(upd.condition_failed());
    }
}
