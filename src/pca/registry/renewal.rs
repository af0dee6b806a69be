//! Renewal's registry writes and the fleet inventory read by `pca expiring` and `pca metrics`.
//!
//! A renewal records generation n+1 in ONE TransactWriteItems of six actions: the four of a first
//! issuance (new serial marker, new `CERT#`, CURRENT, intent → ISSUED), with CURRENT conditioned
//! on still being generation n's ISSUED certificate, plus generation n's `CERT#` item and serial
//! marker set to SUPERSEDED. CURRENT therefore moves to the new certificate only in this
//! transaction, and the old one is SUPERSEDED exactly when the new one is recorded.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::{
    build_err, ca_sk, cert_item, cert_sk, device_pk, get_s, intent_sk, n, parse_cert, s, serial_pk,
    Item, Registry, Written,
};
use crate::error::Result;
use crate::pca::records::{CertRecord, CertStatus, IntentState};

/// What one Scan of the table says about the fleet (`pca expiring`, `pca metrics`).
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    /// Every device's CURRENT record (no PEMs).
    pub current: Vec<CertRecord>,
    /// `CERT#` items (every certificate ever recorded) per status: ISSUED, SUPERSEDED, REVOKED.
    pub certificates: [u64; 3],
    /// Intents not ISSUED.
    pub open_intents: u64,
    /// `FAILED` markers.
    pub failed_markers: u64,
    /// Items read.
    pub items: u64,
}

/// Index of a status in [`Inventory::certificates`].
pub fn status_index(st: CertStatus) -> usize {
    match st {
        CertStatus::Issued => 0,
        CertStatus::Superseded => 1,
        CertStatus::Revoked => 2,
    }
}

/// The attributes the inventory reads (PEMs are left out: a `CERT#` item is mostly its PEMs).
const INVENTORY_PROJECTION: &str =
    "pk, sk, device_id, generation, serial, ca_arn, cert_arn, #st, #state, not_before, not_after, issued_at";

impl Registry {
    /// The AWS clients this registry uses (renewal revokes through them).
    pub fn clients(&self) -> &crate::pca::aws::AwsClients {
        &self.clients
    }

    /// Records generation `rec.generation` as the renewal of `old` (the device's CURRENT
    /// certificate when the renewal began): see the module documentation.
    /// `ConditionFailed`: CURRENT changed meanwhile (another runner recorded this renewal, or the
    /// old certificate was revoked): the caller re-reads the device.
    pub async fn record_renewed(
        &self,
        rec: &CertRecord,
        old: &CertRecord,
        spki_sha256: Option<&str>,
    ) -> Result<Written> {
        let dev = device_pk(&rec.device_id);
        let mut marker = Item::new();
        marker.insert("pk".into(), s(serial_pk(&rec.serial)));
        marker.insert("sk".into(), s(ca_sk(&rec.ca_arn)));
        let full = cert_item(rec, false);
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
            if let Some(v) = full.get(k) {
                marker.insert(k.into(), v.clone());
            }
        }
        let put = |item: Item, cond: &str| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(cond)
        };
        let marker = put(marker, "attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let mut hist = cert_item(rec, true);
        hist.insert("pk".into(), s(&dev));
        hist.insert("sk".into(), s(cert_sk(rec.generation)));
        let hist = put(hist, "attribute_not_exists(pk)")
            .build()
            .map_err(build_err)?;
        let mut cur = full;
        cur.insert("pk".into(), s(&dev));
        cur.insert("sk".into(), s("CURRENT"));
        let cur = put(
            cur,
            "generation = :oldgen AND serial = :oldserial AND #st = :issued",
        )
        .expression_attribute_names("#st", "status")
        .expression_attribute_values(":oldgen", n(old.generation))
        .expression_attribute_values(":oldserial", s(&old.serial))
        .expression_attribute_values(":issued", s(CertStatus::Issued.as_str()))
        .build()
        .map_err(build_err)?;
        let intent = self.intent_recorded(rec)?;
        let (old_cert, old_marker) = self.supersede(rec, old)?;
        let res = self
            .clients
            .ddb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().put(hist).build())
            .transact_items(TransactWriteItem::builder().put(cur).build())
            .transact_items(TransactWriteItem::builder().update(intent).build())
            .transact_items(TransactWriteItem::builder().update(old_cert).build())
            .transact_items(TransactWriteItem::builder().update(old_marker).build());
        // One key, one device: the new key's DEVICE item, as in a first issuance.
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

    /// The intent → ISSUED update of a record transaction.
    fn intent_recorded(&self, rec: &CertRecord) -> Result<Update> {
        Update::builder()
            .table_name(&self.table)
            .key("pk", s(device_pk(&rec.device_id)))
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
            .map_err(build_err)
    }

    /// The two updates that mark `old` SUPERSEDED by `rec`: its `CERT#` item and its serial marker.
    fn supersede(&self, rec: &CertRecord, old: &CertRecord) -> Result<(Update, Update)> {
        let upd = |pk: String, sk: String| {
            Update::builder()
                .table_name(&self.table)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .update_expression(
                    "SET #st = :superseded, superseded_at = :now, superseded_by = :new",
                )
                .condition_expression("#st = :issued AND serial = :oldserial")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":superseded", s(CertStatus::Superseded.as_str()))
                .expression_attribute_values(":issued", s(CertStatus::Issued.as_str()))
                .expression_attribute_values(":oldserial", s(&old.serial))
                .expression_attribute_values(":now", s(&rec.issued_at))
                .expression_attribute_values(":new", s(&rec.serial))
                .build()
                .map_err(build_err)
        };
        Ok((
            upd(device_pk(&old.device_id), cert_sk(old.generation))?,
            upd(serial_pk(&old.serial), ca_sk(&old.ca_arn))?,
        ))
    }

    /// One paginated Scan of the whole table (projected: no PEMs), counted into an [`Inventory`].
    /// Its cost grows with the table, not with the answer: see docs/registry-schema.md.
    pub async fn inventory(&self) -> Result<Inventory> {
        let items: Vec<Item> = self
            .clients
            .ddb
            .scan()
            .table_name(&self.table)
            .projection_expression(INVENTORY_PROJECTION)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#state", "state")
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.map("Scan", e))?;
        let mut inv = Inventory {
            items: items.len() as u64,
            ..Inventory::default()
        };
        for it in &items {
            let sk = get_s(it, "sk").unwrap_or_default();
            if sk == "CURRENT" {
                inv.current.extend(parse_cert(it));
            } else if sk.starts_with("CERT#") {
                if let Some(st) = get_s(it, "status").and_then(|v| CertStatus::parse(&v)) {
                    inv.certificates[status_index(st)] += 1;
                }
            } else if sk.starts_with("INTENT#") {
                let open = get_s(it, "state").as_deref() != Some(IntentState::Issued.as_str());
                inv.open_intents += u64::from(open);
            } else if sk == "FAILED" {
                inv.failed_markers += 1;
            }
        }
        inv.current.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(inv)
    }
}
