//! What an AWS refusal of the request's credentials or signature really means, in one line.
//!
//! AWS answers a bad signature time, expired temporary credentials and an unknown access key with
//! error codes that name the symptom, not the cause. The cause is decided from the code and, for
//! a refused signature, from the answer's `Date` header against this host's clock: SigV4 requests
//! more than 5 minutes off the server's clock are refused (15 minutes for S3), and the same codes
//! also mean a wrong secret key, which a correct clock tells apart.

use std::time::SystemTime;

use aws_sdk_acmpca::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_acmpca::operation::RequestId;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::date_time::{DateTime, Format};

/// Temporary credentials past their expiry.
const EXPIRED: &[&str] = &["ExpiredTokenException", "ExpiredToken", "RequestExpired"];
/// An access key id AWS does not know.
const UNKNOWN_KEY: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
];
/// A signature refused: the time or the secret key is wrong.
const SIGNATURE: &[&str] = &[
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestTimeTooSkewed",
];

/// Beyond this many seconds between this host's clock and AWS's, SigV4 signatures are refused.
pub const MAX_SKEW_SECS: f64 = 300.0;

/// Our clock minus the server's, in seconds (positive: ours is ahead), from an HTTP `Date`.
pub fn skew_seconds(date: &str, at: SystemTime) -> Option<f64> {
    let server = DateTime::from_str(date.trim(), Format::HttpDate).ok()?;
    let ours = DateTime::from(at);
    Some(ours.as_secs_f64() - server.as_secs_f64())
}

/// The `Date` header of an SDK error's raw response, when it is an HTTP response.
pub fn date_of(raw: &dyn std::any::Any) -> Option<String> {
    let resp = raw.downcast_ref::<HttpResponse>()?;
    resp.headers().get("date").map(str::to_string)
}

/// The one-line cause of a credential or signature refusal (`code` from `what`, e.g. "DynamoDB
/// PutItem"), or `None` when the code is not one of those. `skew`: our clock minus the server's.
pub fn cause(what: &str, code: &str, skew: Option<f64>) -> Option<String> {
    if EXPIRED.contains(&code) {
        return Some(format!(
            "{what}: the AWS credentials have expired ({code}): get new ones (aws sso login, or new temporary credentials) and rerun"
        ));
    }
    if UNKNOWN_KEY.contains(&code) {
        return Some(format!(
            "{what}: AWS does not know this access key id ({code}): check AWS_ACCESS_KEY_ID or the profile's credentials"
        ));
    }
    if !SIGNATURE.contains(&code) {
        return None;
    }
    Some(match skew {
        Some(s) if s.abs() > MAX_SKEW_SECS || code == "RequestTimeTooSkewed" => {
            let way = if s >= 0.0 { "ahead of" } else { "behind" };
            format!(
                "{what}: this host's clock is {:.0} s {way} AWS's, and AWS refuses signatures more than 5 minutes off ({code}): sync the clock (chrony/NTP) and rerun",
                s.abs()
            )
        }
        _ => format!(
            "{what}: AWS refused the request signature ({code}) and the clock agrees with AWS's: the secret access key does not match the access key id"
        ),
    })
}

/// [`cause`] for any SDK error (the S3 calls, which map their own errors): an [`crate::Error::Aws`]
/// with the code and request id, or `None` when the error is not a credential or signature refusal.
pub fn refusal<E, R>(what: &str, e: &SdkError<E, R>) -> Option<crate::Error>
where
    E: ProvideErrorMetadata,
    R: 'static,
{
    let SdkError::ServiceError(se) = e else {
        return None;
    };
    let code = se.err().code()?;
    let skew = date_of(se.raw()).and_then(|d| skew_seconds(&d, SystemTime::now()));
    cause(what, code, skew).map(|message| crate::Error::Aws {
        message,
        code: Some(code.to_string()),
        request_id: se.err().meta().request_id().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_cause_has_its_own_message() {
        let w = "DynamoDB Scan";
        assert!(cause(w, "ExpiredTokenException", None)
            .unwrap()
            .contains("credentials have expired"));
        assert!(cause(w, "UnrecognizedClientException", None)
            .unwrap()
            .contains("does not know this access key id"));
        let ahead = cause(w, "InvalidSignatureException", Some(900.0)).unwrap();
        assert!(ahead.contains("900 s ahead of AWS's"), "{ahead}");
        let behind = cause(w, "InvalidSignatureException", Some(-400.0)).unwrap();
        assert!(behind.contains("400 s behind AWS's"), "{behind}");
        let key = cause(w, "InvalidSignatureException", Some(2.0)).unwrap();
        assert!(key.contains("secret access key does not match"), "{key}");
        assert_eq!(cause(w, "ThrottlingException", Some(900.0)), None);
    }

    #[test]
    fn skew_from_an_http_date() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 + 90);
        assert_eq!(
            skew_seconds("Sun, 06 Nov 1994 08:49:37 GMT", at),
            Some(90.0)
        );
        assert_eq!(skew_seconds("yesterday", at), None);
    }
}
