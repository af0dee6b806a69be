//! The registry's domain types: certificate records, intents, serial markers, compromised keys
//! and a device's state as one Query returns it. How they are stored is [`crate::pca::registry`]'s
//! business (which re-exports them).

/// Certificate status in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    /// Issued and not revoked.
    Issued,
    /// Revoked.
    Revoked,
    /// Replaced by a renewal (a newer generation is CURRENT); still valid at AWS until it expires
    /// or `renew --revoke-superseded` revokes it.
    Superseded,
}

impl CertStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Issued => "ISSUED",
            CertStatus::Revoked => "REVOKED",
            CertStatus::Superseded => "SUPERSEDED",
        }
    }

    /// Parses the stored / CLI name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ISSUED" => Some(CertStatus::Issued),
            "REVOKED" => Some(CertStatus::Revoked),
            "SUPERSEDED" => Some(CertStatus::Superseded),
            _ => None,
        }
    }
}

/// One certificate as recorded (CURRENT and CERT# items share this shape; SERIAL# holds a subset).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertRecord {
    /// Device id.
    pub device_id: String,
    /// Generation: 0 for the device's first certificate.
    pub generation: u32,
    /// Serial (lower-case hex).
    pub serial: String,
    /// Issuing CA.
    pub ca_arn: String,
    /// Certificate ARN.
    pub cert_arn: String,
    /// ISSUED / REVOKED.
    pub status: CertStatus,
    /// NotBefore (RFC 3339).
    pub not_before: String,
    /// NotAfter (RFC 3339).
    pub not_after: String,
    /// When it was recorded (RFC 3339).
    pub issued_at: String,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Revocation reason (AWS enum name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<String>,
    /// The idempotency token it was issued with.
    pub token: String,
    /// Template ARN used.
    pub template_arn: String,
    /// Certificate PEM (history items only).
    #[serde(skip)]
    pub cert_pem: Option<String>,
    /// CA chain PEM (history items only).
    #[serde(skip)]
    pub chain_pem: Option<String>,
    /// The runner (owner id) whose transaction recorded it: tells a runner whether a record it
    /// finds after a lost answer is its own.
    #[serde(skip)]
    pub recorded_by: Option<String>,
}

/// Intent state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IntentState {
    /// Claimed; IssueCertificate may or may not have been called (token set once the CSR is known).
    Pending,
    /// IssueCertificate returned `cert_arn`; anyone may complete it.
    Issuing,
    /// Recorded.
    Issued,
}

impl IntentState {
    /// The stored form (`PENDING`…).
    pub fn as_str(self) -> &'static str {
        match self {
            IntentState::Pending => "PENDING",
            IntentState::Issuing => "ISSUING",
            IntentState::Issued => "ISSUED",
        }
    }
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => IntentState::Pending,
            "ISSUING" => IntentState::Issuing,
            "ISSUED" => IntentState::Issued,
            _ => return None,
        })
    }
}

/// The parameters of the IssueCertificate request, fixed when the token is set so that a takeover
/// replays exactly the same request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IssueParams {
    /// Idempotency token.
    pub token: String,
    /// sha256 of the CSR's certificationRequestInfo (hex).
    pub csr_sha256: String,
    /// Template ARN.
    pub template_arn: String,
    /// Signing algorithm (AWS enum name).
    pub signing_algorithm: String,
    /// Validity type (AWS enum name).
    pub validity_type: String,
    /// Validity value.
    pub validity_value: i64,
}

/// An intent record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Intent {
    /// Device id.
    pub device_id: String,
    /// Generation this intent is for.
    pub generation: u32,
    /// State.
    pub state: IntentState,
    /// CA.
    pub ca_arn: String,
    /// Who holds the lease: `<host>:<pid>:<process start>:<nonce>`.
    pub owner: String,
    /// Lease end (Unix seconds).
    pub lease_until: i64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Created (Unix seconds).
    pub created_epoch: i64,
    /// Request parameters, once the CSR is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<IssueParams>,
    /// Certificate ARN once IssueCertificate returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_arn: Option<String>,
    /// Serial once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The owners this intent was taken over from, oldest first (their keys are the taker's to
    /// remove, see `pca::device_key`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_owners: Vec<String>,
}

/// Everything about one device (one Query).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DeviceState {
    /// The CURRENT item.
    pub current: Option<CertRecord>,
    /// CERT# items, oldest first.
    pub history: Vec<CertRecord>,
    /// INTENT# items, oldest first.
    pub intents: Vec<Intent>,
    /// Items in the device's partition, of every kind (FAILED markers included).
    pub items: usize,
    /// The decommissioning marker, if `pca decommission` ran for the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decommissioned: Option<Decommission>,
}

/// A device's decommissioning marker (`DEVICE#<id>` / `DECOMMISSIONED`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decommission {
    /// Every step finished (IN_PROGRESS otherwise: a rerun of `pca decommission` finishes it).
    pub done: bool,
    /// The revocation reason (AWS enum name).
    pub reason: String,
    /// When it started (RFC 3339).
    pub started_at: String,
}

impl DeviceState {
    /// The generation the next certificate would get.
    pub fn next_generation(&self) -> u32 {
        self.current.as_ref().map_or(0, |c| c.generation + 1)
    }

    /// The intent for `generation`, if any.
    pub fn intent(&self, generation: u32) -> Option<&Intent> {
        self.intents.iter().find(|i| i.generation == generation)
    }
}

/// The SERIAL# marker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SerialRecord {
    /// Serial.
    pub serial: String,
    /// CA.
    pub ca_arn: String,
    /// Device.
    pub device_id: String,
    /// Generation within the device.
    pub generation: u32,
    /// Certificate ARN.
    pub cert_arn: String,
    /// Status.
    pub status: CertStatus,
    /// Recorded.
    pub issued_at: String,
    /// NotAfter.
    pub not_after: String,
    /// Revoked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// A public key that a certificate was revoked for with reason key-compromise (the
/// `KEY#<spki sha256>` / `COMPROMISED` item). Issuance refuses any CSR carrying this key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompromisedKey {
    /// SHA-256 (lower-case hex) of the DER SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// The revoked certificate that first declared the key compromised.
    pub serial: String,
    /// Its CA.
    pub ca_arn: String,
    /// Its device.
    pub device_id: String,
    /// When the compromise was recorded (RFC 3339).
    pub recorded_at: String,
}
