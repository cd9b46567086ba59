//! The Check span's parent: the caller's trace context from gRPC
//! metadata (W3C, then B3) or from the checked request's headers, and the
//! trace and span ids the decision log carries.

use std::cell::Cell;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{exporting, REMOTE_TRACE};

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
        if exporting() {
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
    if exporting() {
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
