//! The FAILED marker of batch provisioning: `DEVICE#<id>` / `FAILED` in the registry table.
//!
//! Written (overwritten) when a batch attempt for the device fails; read by `provision --manifest
//! … --retry-failed`, which provisions only the manifest's devices that carry one; deleted when
//! such a retry succeeds (or finds the device already provisioned). A device counts as failed
//! iff it has the marker *and* no ISSUED `CURRENT` item: a plain rerun that succeeds leaves a
//! stale marker behind (it never reads it, to save a call per device), which the next
//! `--retry-failed` run clears. The marker never blocks or changes an issuance; the intent and
//! `CURRENT` items remain the source of truth.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::pca::aws::{map_sdk_error, AwsClients, Service};
use crate::pca::ids::DeviceId;
use crate::pca::registry::{device_pk, rfc3339};

/// The marker's sort key.
pub const FAILED_SK: &str = "FAILED";

/// A device's FAILED marker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FailedMarker {
    /// Device id.
    pub device_id: String,
    /// The last failure (one line).
    pub error: String,
    /// When (RFC 3339).
    pub failed_at: String,
    /// How many batch attempts failed so far.
    pub attempts: u64,
}

fn key(device: &DeviceId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S(device_pk(device.as_str())),
        ),
        ("sk".to_string(), AttributeValue::S(FAILED_SK.to_string())),
    ])
}

fn reg_err<E, R>(
    clients: &AwsClients,
    op: &str,
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> Error
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match map_sdk_error(clients, Service::Ddb, op, e) {
        Error::Aws { message, .. } => Error::Registry(message),
        other => other,
    }
}

/// Records (or updates) the marker: error, time, owner, attempts + 1.
pub async fn mark_failed(
    clients: &AwsClients,
    table: &str,
    device: &DeviceId,
    error: &str,
    owner: &str,
) -> Result<()> {
    clients
        .ddb
        .update_item()
        .table_name(table)
        .set_key(Some(key(device)))
        .update_expression(
            "SET device_id = :d, #err = :e, failed_at = :t, #owner = :o ADD attempts :one",
        )
        .expression_attribute_names("#err", "error")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":d", AttributeValue::S(device.to_string()))
        .expression_attribute_values(":e", AttributeValue::S(error.to_string()))
        .expression_attribute_values(":t", AttributeValue::S(rfc3339(OffsetDateTime::now_utc())))
        .expression_attribute_values(":o", AttributeValue::S(owner.to_string()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .map_err(|e| reg_err(clients, "UpdateItem", e))?;
    Ok(())
}

/// The marker, if the device has one (strongly consistent GetItem).
pub async fn get_failed(
    clients: &AwsClients,
    table: &str,
    device: &DeviceId,
) -> Result<Option<FailedMarker>> {
    // A Query on the item's full key, not GetItem: the provisioning role's IAM policy
    // (infra/templates/hierarchy.yaml) grants Query on the table and no GetItem.
    let out = clients
        .ddb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk = :sk")
        .expression_attribute_values(":pk", AttributeValue::S(device_pk(device.as_str())))
        .expression_attribute_values(":sk", AttributeValue::S(FAILED_SK.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| reg_err(clients, "Query", e))?;
    let Some(it) = out.items().first() else {
        return Ok(None);
    };
    let s = |k: &str| match it.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    Ok(Some(FailedMarker {
        device_id: s("device_id"),
        error: s("error"),
        failed_at: s("failed_at"),
        attempts: match it.get("attempts") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        },
    }))
}

/// Removes the marker (no-op when absent).
pub async fn clear_failed(clients: &AwsClients, table: &str, device: &DeviceId) -> Result<()> {
    clients
        .ddb
        .delete_item()
        .table_name(table)
        .set_key(Some(key(device)))
        .send()
        .await
        .map_err(|e| reg_err(clients, "DeleteItem", e))?;
    Ok(())
}
