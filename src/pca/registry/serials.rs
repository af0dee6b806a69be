//! The serial markers of one CA: what the registry says the CA issued (`pca audit-reconcile`).

use super::{ca_sk, parse_serial, s, Registry};
use crate::error::Result;
use crate::pca::records::SerialRecord;

impl Registry {
    /// Every `SERIAL#<serial>`/`CA#<arn>` marker of `ca_arn` (a paginated Scan: reconciling a
    /// whole CA is not a key look-up). Sorted by serial.
    pub async fn serials_of_ca(&self, ca_arn: &str) -> Result<Vec<SerialRecord>> {
        let items = self
            .clients
            .ddb
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :p) AND sk = :ca")
            .expression_attribute_values(":p", s("SERIAL#"))
            .expression_attribute_values(":ca", s(ca_sk(ca_arn)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.map("Scan", e))?;
        let mut v: Vec<SerialRecord> = items.iter().filter_map(parse_serial).collect();
        v.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(v)
    }
}
