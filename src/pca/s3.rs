//! S3 reads: the CAs' CRLs (`pca crl`, `pca revoke --wait-crl`, `doctor`) and the audit reports
//! (`pca audit-reconcile`), bounded in size, over the same AWS configuration as the other
//! clients (path-style addressing when an endpoint URL is set: the local stand-in has no
//! per-bucket host names).

use aws_config::BehaviorVersion;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// S3's code for a missing object.
pub const NO_SUCH_KEY: &str = "NoSuchKey";

/// An S3 client on the standard AWS configuration (path-style when an endpoint URL is set).
pub async fn client() -> aws_sdk_s3::Client {
    let conf = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&conf);
    if conf.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// An object read by [`get_bounded`].
#[derive(Debug)]
pub struct Object {
    /// Its content.
    pub bytes: Vec<u8>,
    /// When it was written, if S3 said.
    pub last_modified: Option<OffsetDateTime>,
}

/// GetObject of `s3://bucket/key`, refused when larger than `max` bytes (by its length and by
/// what arrives). Errors keep S3's code ([`NO_SUCH_KEY`] for a missing object); a refusal of the
/// credentials or signature says its cause ([`crate::pca::aws_auth`]).
pub async fn get_bounded(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    max: usize,
) -> Result<Object> {
    let url = format!("s3://{bucket}/{key}");
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            if let Some(refused) = crate::pca::aws_auth::refusal("S3 GetObject", &e) {
                return refused;
            }
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no error code")
                .to_string();
            Error::Aws {
                message: format!(
                    "S3 GetObject {url} failed: {code}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ),
                code: Some(code),
                request_id: None,
            }
        })?;
    let too_large = || Error::aws(format!("{url} is larger than {max} bytes"));
    if out.content_length().unwrap_or(0) > max as i64 {
        return Err(too_large());
    }
    let last_modified = out
        .last_modified()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| Error::aws(format!("reading {url}: {e}")))?
        .into_bytes();
    if body.len() > max {
        return Err(too_large());
    }
    Ok(Object {
        bytes: body.to_vec(),
        last_modified,
    })
}
