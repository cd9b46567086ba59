//! OpenTelemetry: the Check span joins the caller's trace, carries the
//! decision, and is exported over OTLP; the decision log gets its ids.
//!
//! - Export is planned from the `telemetry:` config and the standard
//!   `OTEL_*` variables ([`ExportPlan`]); with no endpoint anywhere it is
//!   off and no OpenTelemetry layer is installed, so a Check costs one
//!   plain `tracing` span and a look at the trace headers.
//! - Spans go through the SDK's batch processor: ending a span is a
//!   non-blocking hand-off to a bounded queue (full queue: the span is
//!   dropped, never the decision delayed); a background thread exports.
//! - The parent comes from the Check call's gRPC metadata (W3C
//!   `traceparent`/`tracestate`, else B3), else from the `traceparent` in
//!   the checked request's headers ([`extract_parent`]). Only these header
//!   values are read; none is logged or exported as such.
//! - OTLP metrics, when asked for, mirror the Prometheus registry (see
//!   [`crate::metrics`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::authorize::Outcome;
use crate::config::{OtlpProtocol, TelemetryConfig};

/// `service.name` when neither the config nor the environment names one.
pub const DEFAULT_SERVICE_NAME: &str = env!("CARGO_PKG_NAME");

/// Longest wait for the last spans and metrics at shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether spans are exported (an OpenTelemetry layer is installed).
static EXPORTING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The caller's trace id while a Check runs without export, so the
    /// decision log still joins the caller's trace.
    static REMOTE_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
}

// ---------------------------------------------------------------------------
// Export plan
// ---------------------------------------------------------------------------

/// Where one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub protocol: OtlpProtocol,
    /// Full URL from the config file; `None` lets the exporter read
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (or use the protocol's localhost default).
    pub endpoint: Option<String>,
}

/// What is exported, decided once at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportPlan {
    pub traces: Option<Target>,
    pub metrics: Option<Target>,
    /// `service.name` to set; `None` when the environment names it.
    pub service_name: Option<String>,
    /// Settings that were ignored, for the log once it is up.
    pub warnings: Vec<String>,
}

impl ExportPlan {
    /// Plans from the config and the process environment.
    pub fn from_env(config: &TelemetryConfig) -> Self {
        Self::plan(config, |name| std::env::var(name).ok())
    }

    /// Plans from the config and `env` (a variable lookup).
    pub fn plan(config: &TelemetryConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut plan = Self::default();
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return plan;
        }
        let has_endpoint = !config.otlp_endpoint.trim().is_empty();

        let traces_wanted = match exporter_choice(&env, "OTEL_TRACES_EXPORTER", &mut plan) {
            Some(wanted) => wanted,
            None => {
                has_endpoint
                    || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                    || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            }
        };
        if traces_wanted {
            plan.traces = Some(target(config, &env, "TRACES", "/v1/traces", &mut plan));
        }

        let metrics_wanted = match exporter_choice(&env, "OTEL_METRICS_EXPORTER", &mut plan) {
            Some(wanted) => wanted,
            None => config.otlp_metrics || env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some(),
        };
        if metrics_wanted {
            plan.metrics = Some(target(config, &env, "METRICS", "/v1/metrics", &mut plan));
        }

        let env_names_service = env("OTEL_SERVICE_NAME").is_some()
            || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
                attrs
                    .split(',')
                    .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
            });
        plan.service_name = match &config.service_name {
            Some(name) => Some(name.clone()),
            None if env_names_service => None,
            None => Some(DEFAULT_SERVICE_NAME.to_owned()),
        };
        plan
    }

    /// Whether anything is exported.
    pub fn is_off(&self) -> bool {
        self.traces.is_none() && self.metrics.is_none()
    }
}

/// `OTEL_<SIGNAL>S_EXPORTER`: `Some(true)` for `otlp`, `Some(false)` for
/// `none` or only unsupported exporters, `None` when unset.
fn exporter_choice(
    env: &impl Fn(&str) -> Option<String>,
    var: &str,
    plan: &mut ExportPlan,
) -> Option<bool> {
    let value = env(var)?;
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(|n| n == "none") {
        return Some(false);
    }
    for name in names.iter().filter(|n| *n != "otlp") {
        // Prometheus is served at /metrics whatever this says.
        if !(var == "OTEL_METRICS_EXPORTER" && name == "prometheus") {
            plan.warnings.push(format!(
                "{var}: exporter `{name}` is not supported; only otlp"
            ));
        }
    }
    Some(names.iter().any(|n| n == "otlp"))
}

fn target(
    config: &TelemetryConfig,
    env: &impl Fn(&str) -> Option<String>,
    signal: &str,
    http_path: &str,
    plan: &mut ExportPlan,
) -> Target {
    let protocol = config.otlp_protocol.unwrap_or_else(|| {
        [
            format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"),
            "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
        ]
        .iter()
        .find_map(|var| {
            let value = env(var)?;
            match value.to_ascii_lowercase().as_str() {
                "grpc" => Some(OtlpProtocol::Grpc),
                "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
                _ => {
                    plan.warnings.push(format!(
                        "{var}: `{value}` is not supported; use grpc or http/protobuf"
                    ));
                    None
                }
            }
        })
        .unwrap_or(OtlpProtocol::HttpProtobuf)
    });
    let base = config.otlp_endpoint.trim();
    let endpoint = (!base.is_empty()).then(|| match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}{http_path}", base.trim_end_matches('/')),
    });
    Target { protocol, endpoint }
}

// ---------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------

/// The installed export pipelines; [`OtelGuard::shutdown`] (or drop)
/// flushes what is queued.
#[derive(Debug, Default)]
pub struct OtelGuard {
    traces: Option<SdkTracerProvider>,
    metrics: Option<SdkMeterProvider>,
}

impl OtelGuard {
    /// Builds the exporters of `plan`. Must run inside a Tokio runtime,
    /// which has to outlive the guard (the gRPC exporter runs on it).
    pub fn install(plan: &ExportPlan) -> anyhow::Result<Self> {
        let mut guard = Self::default();
        if plan.is_off() {
            return Ok(guard);
        }
        let resource = resource(plan);
        if let Some(target) = &plan.traces {
            let exporter = span_exporter(target)?;
            guard.traces = Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource.clone())
                    .build(),
            );
        }
        if let Some(target) = &plan.metrics {
            let exporter = metric_exporter(target)?;
            let provider = SdkMeterProvider::builder()
                .with_periodic_exporter(exporter)
                .with_resource(resource)
                .build();
            crate::metrics::export_otlp(&opentelemetry::metrics::MeterProvider::meter_with_scope(
                &provider,
                scope(),
            ));
            guard.metrics = Some(provider);
        }
        Ok(guard)
    }

    /// The `tracing` layer that turns Check spans into OpenTelemetry spans,
    /// when spans are exported. Only this crate's spans reach it (not its
    /// events, nor the spans of the exporter's own HTTP/gRPC stack), and
    /// the log level does not filter it.
    pub fn layer<S>(&self) -> Option<impl Layer<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let provider = self.traces.as_ref()?;
        EXPORTING.store(true, Ordering::SeqCst);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer_with_scope(scope()))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with(env!("CARGO_CRATE_NAME"))
            }));
        Some(layer)
    }

    /// Whether spans are exported.
    pub fn exports_traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Whether metrics are pushed over OTLP.
    pub fn exports_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    /// Exports what is queued and stops the pipelines. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.traces.take() {
            EXPORTING.store(false, Ordering::SeqCst);
            if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %error, "span export at shutdown failed");
            }
        }
        if let Some(provider) = self.metrics.take() {
            if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                tracing::warn!(error = %error, "metric export at shutdown failed");
            }
        }
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the SDK;
/// the config's service name wins over both.
fn resource(plan: &ExportPlan) -> Resource {
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match &plan.service_name {
        Some(name) => builder.with_service_name(name.clone()).build(),
        None => builder.build(),
    }
}

fn span_exporter(target: &Target) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match (target.protocol, &target.endpoint) {
        (OtlpProtocol::Grpc, Some(url)) => builder.with_tonic().with_endpoint(url).build(),
        (OtlpProtocol::Grpc, None) => builder.with_tonic().build(),
        (OtlpProtocol::HttpProtobuf, endpoint) => {
            let builder = builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            match endpoint {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
    };
    exporter.map_err(|e| anyhow::anyhow!("cannot build the OTLP span exporter: {e}"))
}

fn metric_exporter(target: &Target) -> anyhow::Result<opentelemetry_otlp::MetricExporter> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    let exporter = match (target.protocol, &target.endpoint) {
        (OtlpProtocol::Grpc, Some(url)) => builder.with_tonic().with_endpoint(url).build(),
        (OtlpProtocol::Grpc, None) => builder.with_tonic().build(),
        (OtlpProtocol::HttpProtobuf, endpoint) => {
            let builder = builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            match endpoint {
                Some(url) => builder.with_endpoint(url).build(),
                None => builder.build(),
            }
        }
    };
    exporter.map_err(|e| anyhow::anyhow!("cannot build the OTLP metric exporter: {e}"))
}

// ---------------------------------------------------------------------------
// Parent extraction
// ---------------------------------------------------------------------------

/// Where the parent of a Check span came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentSource {
    /// `traceparent` (and `tracestate`) in the Check call's gRPC metadata.
    GrpcTraceContext,
    /// B3 (`b3`, or `x-b3-traceid` and `x-b3-spanid`) in the gRPC metadata.
    GrpcB3,
    /// `traceparent` (and `tracestate`) in the checked HTTP request.
    HttpTraceContext,
}

impl ParentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GrpcTraceContext => "grpc_traceparent",
            Self::GrpcB3 => "grpc_b3",
            Self::HttpTraceContext => "http_traceparent",
        }
    }
}

/// A remote parent of a Check span.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    pub context: SpanContext,
    pub source: ParentSource,
}

/// Finds the trace the Check belongs to: the gRPC metadata's W3C trace
/// context, else its B3 headers, else the `traceparent` of the checked
/// HTTP request. Malformed values are ignored (the span starts a trace).
pub fn extract_parent(
    metadata: &tonic::metadata::MetadataMap,
    check: &CheckRequest,
) -> Option<Parent> {
    let grpc = MetadataCarrier(metadata);
    if let Some(context) = trace_context(&grpc) {
        return Some(Parent {
            context,
            source: ParentSource::GrpcTraceContext,
        });
    }
    if let Some(context) = b3::extract(|name| grpc.get(name)) {
        return Some(Parent {
            context,
            source: ParentSource::GrpcB3,
        });
    }
    let http = check
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())?;
    trace_context(&HttpCarrier(http)).map(|context| Parent {
        context,
        source: ParentSource::HttpTraceContext,
    })
}

fn trace_context(carrier: &dyn Extractor) -> Option<SpanContext> {
    let cx = TraceContextPropagator::new().extract(carrier);
    let context = cx.span().span_context().clone();
    context.is_valid().then_some(context)
}

/// gRPC metadata as a propagation carrier (ASCII values only).
struct MetadataCarrier<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// The checked request's headers: Envoy's `headers` map, else its
/// `header_map` (sent instead when `encode_raw_headers` is on).
struct HttpCarrier<'a>(
    &'a envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest,
);

impl Extractor for HttpCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = self.0.headers.get(key) {
            return Some(value);
        }
        self.0
            .header_map
            .as_ref()?
            .headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| {
                if h.value.is_empty() {
                    std::str::from_utf8(&h.raw_value).ok()
                } else {
                    Some(h.value.as_str())
                }
            })
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// B3 propagation as Zipkin (and Envoy's Zipkin tracer) sends it.
pub mod b3 {
    use super::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    /// Reads the single `b3` header, else the `x-b3-*` headers. A 64-bit
    /// trace id is left-padded to 128 bits. Sampled when the sampling state
    /// is `1`/`true` or debug (`d`, `x-b3-flags: 1`); a deferred decision
    /// (no state) is propagated unsampled, as OpenTelemetry's B3 propagator
    /// does. `None` when absent, malformed, or a sampling-only header.
    pub fn extract<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<SpanContext> {
        if let Some(single) = get("b3") {
            return single_header(single.trim());
        }
        let trace_id = trace_id(get("x-b3-traceid")?.trim())?;
        let span_id = span_id(get("x-b3-spanid")?.trim())?;
        let debug = get("x-b3-flags").is_some_and(|f| f.trim() == "1");
        let sampled = match get("x-b3-sampled").map(str::trim) {
            None => debug,
            Some("1") => true,
            Some(s) if s.eq_ignore_ascii_case("true") => true,
            Some("0") => debug,
            Some(s) if s.eq_ignore_ascii_case("false") => debug,
            Some(_) => return None,
        };
        Some(context(trace_id, span_id, sampled))
    }

    /// `{trace id}-{span id}[-{sampling state}[-{parent span id}]]`.
    fn single_header(value: &str) -> Option<SpanContext> {
        let mut parts = value.split('-');
        let trace_id = trace_id(parts.next()?)?;
        let span_id = span_id(parts.next()?)?;
        let sampled = match parts.next() {
            None => false,
            Some("1" | "d") => true,
            Some("0") => false,
            Some(_) => return None,
        };
        if let Some(parent) = parts.next() {
            span_id_valid(parent)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(context(trace_id, span_id, sampled))
    }

    fn context(trace_id: TraceId, span_id: SpanId, sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(trace_id, span_id, flags, true, TraceState::default())
    }

    fn is_hex(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn trace_id(s: &str) -> Option<TraceId> {
        if !(s.len() == 16 || s.len() == 32) || !is_hex(s) {
            return None;
        }
        let id = TraceId::from_hex(s).ok()?;
        (id != TraceId::INVALID).then_some(id)
    }

    fn span_id(s: &str) -> Option<SpanId> {
        span_id_valid(s)
    }

    fn span_id_valid(s: &str) -> Option<SpanId> {
        if s.len() != 16 || !is_hex(s) {
            return None;
        }
        let id = SpanId::from_hex(s).ok()?;
        (id != SpanId::INVALID).then_some(id)
    }
}

// ---------------------------------------------------------------------------
// The Check span
// ---------------------------------------------------------------------------

/// Restores the thread's remote trace id when a Check ends.
#[derive(Debug)]
pub struct ParentGuard {
    previous: Option<TraceId>,
}

impl Drop for ParentGuard {
    fn drop(&mut self) {
        REMOTE_TRACE.with(|cell| cell.set(self.previous));
    }
}

/// Makes `parent` the parent of `span`; call before entering the span.
/// Without export, the parent's trace id is kept for the decision log
/// until the guard drops (the handler does not await in between).
pub fn adopt(span: &Span, parent: Option<&Parent>) -> ParentGuard {
    let trace = parent.map(|p| p.context.trace_id());
    let previous = REMOTE_TRACE.with(|cell| cell.replace(trace));
    if let Some(parent) = parent {
        if EXPORTING.load(Ordering::Relaxed) {
            let cx = opentelemetry::Context::new().with_remote_span_context(parent.context.clone());
            // Fails only without the layer or once the span started.
            let _ = span.set_parent(cx);
        }
    }
    ParentGuard { previous }
}

/// Trace id of the current span (or, without export, of the caller's
/// trace), as 32 hex digits.
pub fn trace_id() -> Option<String> {
    ids().0
}

/// Span id of the current span as 16 hex digits, when it is exported.
pub fn span_id() -> Option<String> {
    ids().1
}

/// Trace id and span id for the decision log. The span id is given only
/// for a sampled span, so that it names a span the backend has.
pub fn ids() -> (Option<String>, Option<String>) {
    if EXPORTING.load(Ordering::Relaxed) {
        let cx = Span::current().context();
        let span = cx.span();
        let context = span.span_context();
        if context.is_valid() {
            let span_id = context.is_sampled().then(|| context.span_id().to_string());
            return (Some(context.trace_id().to_string()), span_id);
        }
        return (None, None);
    }
    let trace = REMOTE_TRACE.with(Cell::get);
    (trace.map(|t| t.to_string()), None)
}

/// Puts the decision on the exported span: the checked request's HTTP
/// attributes, the Cedar request and answer, and an error status for a
/// fault (mapping failure or evaluation errors; a deny is not an error).
pub fn record_outcome(span: &Span, outcome: &Outcome, dry_run: bool) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let cx = span.context();
    let otel = cx.span();
    if !otel.is_recording() {
        return;
    }
    otel.set_attributes(outcome_attributes(outcome, dry_run));
    if let Some(status) = outcome_status(outcome) {
        otel.set_status(status);
    }
}

/// The span attributes of one outcome.
pub fn outcome_attributes(outcome: &Outcome, dry_run: bool) -> Vec<KeyValue> {
    let d = &outcome.decision;
    let mut attrs = Vec::with_capacity(24);
    attrs.push(KeyValue::new("rpc.grpc.status_code", 0_i64));
    if let Some(facts) = &outcome.facts {
        if let Some(http) = &facts.http {
            attrs.push(KeyValue::new("http.request.method", http.method.clone()));
            attrs.push(KeyValue::new("url.path", http.path.path.clone()));
            attrs.push(KeyValue::new("server.address", http.host.name.clone()));
        }
        if let Some(source) = facts.source_address {
            attrs.push(KeyValue::new("client.address", source.ip().to_string()));
            attrs.push(KeyValue::new("client.port", i64::from(source.port())));
        }
    }
    attrs.push(KeyValue::new(
        "http.response.status_code",
        i64::from(d.http_status),
    ));
    attrs.push(KeyValue::new(
        "cedar.decision",
        if d.is_allow() { "allow" } else { "deny" },
    ));
    if let Some(kind) = d.deny {
        attrs.push(KeyValue::new("cedar.deny_reason", kind.as_str()));
    }
    attrs.push(KeyValue::new("cedar.policies", string_array(&d.policies)));
    if !d.errors.is_empty() {
        attrs.push(KeyValue::new("cedar.errors", string_array(&d.errors)));
    }
    if let Some(cedar) = &outcome.cedar {
        attrs.push(KeyValue::new(
            "cedar.principal",
            cedar.principal.to_string(),
        ));
        attrs.push(KeyValue::new("cedar.action", cedar.action.to_string()));
        attrs.push(KeyValue::new("cedar.resource", cedar.resource.to_string()));
    }
    if let Some(identity) = &outcome.identity {
        attrs.push(KeyValue::new("cedar.identity.source", identity.source()));
        attrs.push(KeyValue::new("cedar.identity.trusted", identity.trusted));
    }
    if let Some(refusal) = &outcome.refusal {
        attrs.push(KeyValue::new("cedar.refusal", refusal.clone()));
    }
    attrs.push(KeyValue::new("cedar.dry_run", dry_run));
    attrs.push(KeyValue::new(
        "cedar.policy_set.version",
        outcome.version.clone(),
    ));
    attrs
}

/// `Error` for a fault, `None` (unset) otherwise.
pub fn outcome_status(outcome: &Outcome) -> Option<Status> {
    if let Some(fault) = &outcome.fault {
        return Some(Status::error(format!("cannot map the request: {fault}")));
    }
    let errors = &outcome.decision.errors;
    (!errors.is_empty())
        .then(|| Status::error(format!("{} policy evaluation error(s)", errors.len())))
}

fn string_array(items: &[String]) -> Value {
    Value::Array(Array::String(
        items.iter().map(|s| StringValue::from(s.clone())).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use tonic::metadata::MetadataMap;

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const OTHER_SPAN: &str = "b7ad6b7169203331";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn config(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.into(),
            ..TelemetryConfig::default()
        }
    }

    #[test]
    fn nothing_configured_exports_nothing() {
        let plan = ExportPlan::plan(&config(""), env(&[("OTEL_SERVICE_NAME", "x")]));
        assert!(plan.is_off(), "{plan:?}");
        let plan = ExportPlan::plan(&config(""), env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]));
        assert!(plan.is_off(), "{plan:?}");
    }

    #[test]
    fn generic_endpoint_turns_on_traces_only_with_the_default_protocol() {
        let plan = ExportPlan::plan(
            &config(""),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
        );
        let traces = plan.traces.unwrap();
        assert_eq!(traces.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            traces.endpoint, None,
            "the exporter reads the variable itself"
        );
        assert!(plan.metrics.is_none());
        assert_eq!(plan.service_name.as_deref(), Some(DEFAULT_SERVICE_NAME));
    }

    #[test]
    fn signal_protocol_wins_over_generic_and_config_wins_over_both() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ];
        let plan = ExportPlan::plan(&config(""), env(&vars));
        assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::Grpc);
        let mut cfg = config("");
        cfg.otlp_protocol = Some(OtlpProtocol::HttpProtobuf);
        let plan = ExportPlan::plan(&cfg, env(&vars));
        assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn config_endpoint_is_a_base_url_for_http_and_verbatim_for_grpc() {
        let mut cfg = config("http://collector:4318/");
        cfg.otlp_metrics = true;
        let plan = ExportPlan::plan(&cfg, env(&[]));
        assert_eq!(
            plan.traces.unwrap().endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            plan.metrics.unwrap().endpoint.as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        let mut cfg = config("http://collector:4317");
        cfg.otlp_protocol = Some(OtlpProtocol::Grpc);
        let plan = ExportPlan::plan(&cfg, env(&[]));
        assert_eq!(
            plan.traces.unwrap().endpoint.as_deref(),
            Some("http://collector:4317")
        );
    }

    #[test]
    fn exporter_variables_and_sdk_disabled_are_obeyed() {
        let plan = ExportPlan::plan(
            &config("http://c:4318"),
            env(&[("OTEL_TRACES_EXPORTER", "none")]),
        );
        assert!(plan.traces.is_none());
        let plan = ExportPlan::plan(&config(""), env(&[("OTEL_TRACES_EXPORTER", "otlp")]));
        assert!(
            plan.traces.is_some(),
            "otlp asks for export to the default endpoint"
        );
        let plan = ExportPlan::plan(
            &config(""),
            env(&[("OTEL_METRICS_EXPORTER", "otlp,prometheus")]),
        );
        assert!(plan.metrics.is_some() && plan.traces.is_none());
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        let plan = ExportPlan::plan(&config(""), env(&[("OTEL_TRACES_EXPORTER", "zipkin")]));
        assert!(plan.traces.is_none());
        assert_eq!(plan.warnings.len(), 1);
        let plan = ExportPlan::plan(
            &config("http://c:4318"),
            env(&[
                ("OTEL_SDK_DISABLED", "TRUE"),
                ("OTEL_METRICS_EXPORTER", "otlp"),
            ]),
        );
        assert!(plan.is_off());
    }

    #[test]
    fn unsupported_protocol_is_a_warning_and_falls_back() {
        let plan = ExportPlan::plan(
            &config("http://c:4318"),
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        );
        assert_eq!(plan.traces.unwrap().protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    }

    #[test]
    fn service_name_from_config_then_environment_then_default() {
        let mut cfg = config("http://c:4318");
        let plan = ExportPlan::plan(
            &cfg,
            env(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b, service.name=x")]),
        );
        assert_eq!(plan.service_name, None);
        cfg.service_name = Some("authz".into());
        let plan = ExportPlan::plan(&cfg, env(&[("OTEL_SERVICE_NAME", "x")]));
        assert_eq!(plan.service_name.as_deref(), Some("authz"));
    }

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn check_with_headers(headers: &[(&str, &str)]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        headers: headers
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        ..HttpRequest::default()
                    }),
                    ..Request::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    fn ids_of(parent: &Parent) -> (String, String, bool) {
        let c = &parent.context;
        (
            c.trace_id().to_string(),
            c.span_id().to_string(),
            c.is_sampled(),
        )
    }

    #[test]
    fn grpc_traceparent_is_the_parent_with_its_tracestate() {
        let md = metadata(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "vendor=1"),
            ("x-b3-traceid", OTHER_TRACE),
            ("x-b3-spanid", OTHER_SPAN),
        ]);
        let check =
            check_with_headers(&[("traceparent", &format!("00-{OTHER_TRACE}-{OTHER_SPAN}-01"))]);
        let parent = extract_parent(&md, &check).unwrap();
        assert_eq!(parent.source, ParentSource::GrpcTraceContext);
        assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
        assert!(parent.context.is_remote());
        assert_eq!(parent.context.trace_state().get("vendor"), Some("1"));
    }

    #[test]
    fn grpc_b3_is_used_when_there_is_no_traceparent() {
        let md = metadata(&[
            ("traceparent", "garbage"),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        let parent = extract_parent(&md, &CheckRequest::default()).unwrap();
        assert_eq!(parent.source, ParentSource::GrpcB3);
        assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
    }

    #[test]
    fn http_traceparent_is_the_fallback() {
        let check = check_with_headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "k=v"),
        ]);
        let parent = extract_parent(&MetadataMap::new(), &check).unwrap();
        assert_eq!(parent.source, ParentSource::HttpTraceContext);
        assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), true));
        assert_eq!(parent.context.trace_state().get("k"), Some("v"));
    }

    #[test]
    fn http_traceparent_is_read_from_the_raw_header_map_too() {
        let mut check = check_with_headers(&[]);
        let http = check
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
            .unwrap();
        http.header_map = Some(HeaderMap {
            headers: vec![HeaderValue {
                key: "traceparent".into(),
                value: String::new(),
                raw_value: format!("00-{TRACE}-{SPAN}-00").into_bytes(),
            }],
        });
        let parent = extract_parent(&MetadataMap::new(), &check).unwrap();
        assert_eq!(ids_of(&parent), (TRACE.into(), SPAN.into(), false));
    }

    #[test]
    fn no_or_malformed_context_gives_no_parent() {
        assert_eq!(
            extract_parent(&MetadataMap::new(), &CheckRequest::default()),
            None
        );
        let md = metadata(&[("traceparent", &format!("00-{}-{SPAN}-01", "0".repeat(32)))]);
        let check = check_with_headers(&[("traceparent", "00-xyz-abc-01")]);
        assert_eq!(extract_parent(&md, &check), None);
    }

    fn b3(pairs: &[(&str, &str)]) -> Option<(String, String, bool)> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        b3::extract(|name| map.get(name).copied()).map(|c| {
            (
                c.trace_id().to_string(),
                c.span_id().to_string(),
                c.is_sampled(),
            )
        })
    }

    #[test]
    fn b3_multi_header() {
        let want = Some((TRACE.to_owned(), SPAN.to_owned(), true));
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1")
            ]),
            want
        );
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "true")
            ]),
            want
        );
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "1")
            ]),
            want
        );
        let unsampled = Some((TRACE.to_owned(), SPAN.to_owned(), false));
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "0")
            ]),
            unsampled
        );
        assert_eq!(
            b3(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]),
            unsampled,
            "deferred"
        );
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", OTHER_SPAN),
                ("x-b3-sampled", "1"),
            ]),
            want
        );
    }

    #[test]
    fn b3_64_bit_trace_id_is_left_padded() {
        let got = b3(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]);
        assert_eq!(got.unwrap().0, "0000000000000000a3ce929d0e0e4736");
        let got = b3(&[("b3", &format!("a3ce929d0e0e4736-{SPAN}-1"))]);
        assert_eq!(got.unwrap().0, "0000000000000000a3ce929d0e0e4736");
    }

    #[test]
    fn b3_single_header_forms() {
        let sampled = Some((TRACE.to_owned(), SPAN.to_owned(), true));
        let unsampled = Some((TRACE.to_owned(), SPAN.to_owned(), false));
        assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-1"))]), sampled);
        assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-d"))]), sampled);
        assert_eq!(
            b3(&[("b3", &format!("{TRACE}-{SPAN}-1-{OTHER_SPAN}"))]),
            sampled
        );
        assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}-0"))]), unsampled);
        assert_eq!(b3(&[("b3", &format!("{TRACE}-{SPAN}"))]), unsampled);
        // The single header wins over the multi headers.
        assert_eq!(
            b3(&[
                ("b3", &format!("{TRACE}-{SPAN}-1")),
                ("x-b3-traceid", OTHER_TRACE),
                ("x-b3-spanid", OTHER_SPAN),
            ]),
            sampled
        );
    }

    #[test]
    fn b3_malformed_is_ignored() {
        for single in [
            "0".to_owned(),
            "1".to_owned(),
            "d".to_owned(),
            format!("{TRACE}"),
            format!("{TRACE}-{SPAN}-2"),
            format!("{TRACE}-{SPAN}-1-xyz"),
            format!("{TRACE}-{SPAN}-1-{OTHER_SPAN}-extra"),
            format!("{}-{SPAN}-1", "0".repeat(32)),
            format!("{TRACE}-{}-1", "0".repeat(16)),
            format!("{TRACE}0-{SPAN}-1"),
            format!("+{}-{SPAN}-1", &TRACE[1..]),
            format!("{TRACE}-+{}-1", &SPAN[1..]),
        ] {
            assert_eq!(b3(&[("b3", &single)]), None, "{single}");
        }
        assert_eq!(b3(&[("x-b3-traceid", TRACE)]), None);
        assert_eq!(b3(&[("x-b3-spanid", SPAN)]), None);
        assert_eq!(b3(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", SPAN)]), None);
        assert_eq!(
            b3(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "yes")
            ]),
            None
        );
    }

    #[test]
    fn without_export_the_log_gets_the_callers_trace_id_only() {
        let parent = Parent {
            context: SpanContext::new(
                TraceId::from_hex(TRACE).unwrap(),
                SpanId::from_hex(SPAN).unwrap(),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ),
            source: ParentSource::GrpcTraceContext,
        };
        let span = Span::none();
        {
            let _guard = adopt(&span, Some(&parent));
            assert_eq!(ids(), (Some(TRACE.to_owned()), None));
        }
        assert_eq!(ids(), (None, None));
        let _guard = adopt(&span, None);
        assert_eq!(trace_id(), None);
        assert_eq!(span_id(), None);
    }
}
