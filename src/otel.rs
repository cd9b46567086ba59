//! OpenTelemetry: the Check span joins the caller's trace, carries the
//! decision, and is exported over OTLP; the decision log gets its ids.
//!
//! - Export is planned from the `telemetry:` config and the standard
//!   `OTEL_*` variables ([`ExportPlan`]); with no endpoint anywhere it is
//!   off and no OpenTelemetry layer is installed, so a Check builds no
//!   span at all, only a look at the trace headers.
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
use std::sync::atomic::AtomicBool;

use opentelemetry::trace::TraceId;

mod attributes;
mod parent;
mod pipeline;
mod plan;
#[cfg(test)]
mod tests;

pub use attributes::{outcome_attributes, outcome_status, record_outcome};
pub use parent::{
    adopt, b3, extract_parent, ids, span_id, trace_id, Parent, ParentGuard, ParentSource,
};
pub use pipeline::OtelGuard;
pub use plan::{ExportPlan, Target};

/// `service.name` when neither the config nor the environment names one.
pub const DEFAULT_SERVICE_NAME: &str = env!("CARGO_PKG_NAME");

/// Whether spans are exported (an OpenTelemetry layer is installed).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported; without export a Check needs no span at all.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    /// The caller's trace id while a Check runs without export, so the
    /// decision log still joins the caller's trace.
    static REMOTE_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
}
