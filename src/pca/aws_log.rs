//! One debug log line per AWS call attempt: service, operation, attempt, HTTP status, AWS's
//! request id and the attempt's latency (`-v`, or `RUST_LOG=hsm_demo=debug`; `--log-format json`
//! makes each a JSON object). Never the request or response body.

use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// When the current attempt was sent.
#[derive(Debug, Clone)]
struct AttemptStart(Instant);

impl Storable for AttemptStart {
    type Storer = StoreReplace<Self>;
}

/// The interceptor (installed on every client of [`crate::pca::aws::AwsClients`]).
#[derive(Debug)]
pub struct CallLogger;

impl Intercept for CallLogger {
    fn name(&self) -> &'static str {
        "hsm-demo call logger"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptStart(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return Ok(());
        }
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("?", "?"), |m| (m.service(), m.name()));
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let latency_ms = cfg
            .load::<AttemptStart>()
            .map_or(0, |s| s.0.elapsed().as_millis() as u64);
        let resp = ctx.response();
        let status = resp.map_or(0, |r| r.status().as_u16());
        let request_id = resp
            .and_then(|r| {
                let h = r.headers();
                h.get("x-amzn-requestid")
                    .or_else(|| h.get("x-amz-request-id"))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        tracing::debug!(
            service,
            operation,
            attempt,
            status,
            request_id = %request_id,
            latency_ms,
            "AWS call"
        );
        Ok(())
    }
}
