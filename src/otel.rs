//! OpenTelemetry: the trace and span ids of the current Check, for the
//! decision log.
//!
//! Export and parent extraction are added by the observability work
//! (issue 3); until then no ids are known and the fields are omitted.

/// Trace id of the current span, as 32 hex digits.
pub fn trace_id() -> Option<String> {
    None
}

/// Span id of the current span, as 16 hex digits.
pub fn span_id() -> Option<String> {
    None
}
