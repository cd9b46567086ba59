//! Prometheus metrics, served as text by the admin listener, and their
//! OTLP mirror.
//!
//! One process-wide registry; recording is a few atomic adds, so it stays
//! on the decision path. Names follow Prometheus conventions with the
//! `cedar_ext_authz_` prefix.
//!
//! The Prometheus registry is the source of truth. When OTLP metrics are
//! asked for, [`export_otlp`] adds OpenTelemetry instruments with the same
//! names (without Prometheus' `_total` suffix; the duration carries unit
//! `s`): the per-Check counters and the latency histogram are recorded
//! beside the Prometheus ones, and the policy metrics are observed from
//! the registry at each export, so both paths report the same numbers.

use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};

use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use opentelemetry::KeyValue;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

use crate::authorize::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    outcome: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
}

struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    latency: Histogram,
    evaluation_errors: Counter,
    untrusted_headers: Counter,
    loads: Family<ResultLabels, Counter>,
    info: Family<InfoLabels, Gauge>,
    policies: Gauge,
    shadow: Family<ResultLabels, Counter>,
    /// The version in `info`, for the OTLP mirror.
    version: Mutex<String>,
}

/// Latency buckets in seconds, shared by both exports.
const LATENCY_BUCKETS: [f64; 11] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
];

/// Results of `policy_loads`.
const LOAD_RESULTS: [&str; 3] = ["load_ok", "reload_ok", "failed"];

/// OpenTelemetry instruments recorded on the decision path; the observable
/// ones are kept only so that they stay registered.
struct OtelInstruments {
    decisions: OtelCounter<u64>,
    latency: OtelHistogram<f64>,
    evaluation_errors: OtelCounter<u64>,
    untrusted_headers: OtelCounter<u64>,
    _observed: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

static OTEL: OnceLock<OtelInstruments> = OnceLock::new();

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("cedar_ext_authz");
    let decisions = Family::<DecisionLabels, Counter>::default();
    registry.register(
        "decisions",
        "Decisions by outcome and HTTP status",
        decisions.clone(),
    );
    let latency = Histogram::new(LATENCY_BUCKETS);
    registry.register(
        "check_duration_seconds",
        "Time to decide one Check",
        latency.clone(),
    );
    let evaluation_errors = Counter::default();
    registry.register(
        "evaluation_errors",
        "Checks with policy evaluation errors",
        evaluation_errors.clone(),
    );
    let untrusted_headers = Counter::default();
    registry.register(
        "untrusted_identity_headers",
        "Checks whose identity headers the trust gate ignored",
        untrusted_headers.clone(),
    );
    let loads = Family::<ResultLabels, Counter>::default();
    // Every result exists from the start at 0, so that `increase()` sees
    // the first failure (a series born at 1 looks unchanged).
    for result in ["load_ok", "reload_ok", "failed"] {
        let _ = loads.get_or_create(&ResultLabels { result });
    }
    registry.register(
        "policy_loads",
        "Policy set loads and reloads by result",
        loads.clone(),
    );
    let info = Family::<InfoLabels, Gauge>::default();
    registry.register(
        "policy_set_info",
        "The serving policy set version (value 1)",
        info.clone(),
    );
    let policies = Gauge::default();
    registry.register(
        "policies",
        "Policies and templates in the serving set",
        policies.clone(),
    );
    let shadow = Family::<ResultLabels, Counter>::default();
    registry.register(
        "shadow_comparisons",
        "Shadow policy decisions by agreement with the enforced one",
        shadow.clone(),
    );
    Metrics {
        registry,
        decisions,
        latency,
        evaluation_errors,
        untrusted_headers,
        loads,
        info,
        policies,
        shadow,
        version: Mutex::new(String::new()),
    }
});

/// Counts one decision.
pub fn decision(outcome: &Outcome) {
    let m = &*METRICS;
    let d = &outcome.decision;
    let labels = DecisionLabels {
        outcome: if d.is_allow() { "allow" } else { "deny" },
        status: d.http_status,
    };
    m.decisions.get_or_create(&labels).inc();
    #[expect(clippy::cast_precision_loss, reason = "microseconds fit f64 exactly")]
    let seconds = outcome.micros as f64 / 1e6;
    m.latency.observe(seconds);
    let evaluation_error = !d.errors.is_empty();
    if evaluation_error {
        m.evaluation_errors.inc();
    }
    let untrusted = outcome
        .identity
        .as_ref()
        .is_some_and(|i| !i.ignored_headers.is_empty());
    if untrusted {
        m.untrusted_headers.inc();
    }
    if let Some(otel) = OTEL.get() {
        let attrs = [
            KeyValue::new("outcome", labels.outcome),
            KeyValue::new("status", i64::from(labels.status)),
        ];
        otel.decisions.add(1, &attrs);
        otel.latency.record(seconds, &[]);
        if evaluation_error {
            otel.evaluation_errors.add(1, &[]);
        }
        if untrusted {
            otel.untrusted_headers.add(1, &[]);
        }
    }
}

/// Records a successful load; `reload` is false for the first one.
pub fn policy_loaded(version: &str, count: usize, reload: bool) {
    let m = &*METRICS;
    let result = if reload { "reload_ok" } else { "load_ok" };
    m.loads.get_or_create(&ResultLabels { result }).inc();
    m.info.clear();
    m.info
        .get_or_create(&InfoLabels {
            version: version.to_owned(),
        })
        .set(1);
    version.clone_into(&mut m.version.lock().unwrap_or_else(PoisonError::into_inner));
    m.policies.set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Records a failed load or reload.
pub fn policy_load_failed() {
    METRICS
        .loads
        .get_or_create(&ResultLabels { result: "failed" })
        .inc();
}

/// Mirrors every metric into OpenTelemetry instruments of `meter`, which
/// an OTLP exporter reads periodically. Only the first call has an effect.
pub fn export_otlp(meter: &Meter) {
    let _ = OTEL.get_or_init(|| {
        let loads = meter
            .u64_observable_counter("cedar_ext_authz_policy_loads")
            .with_description("Policy set loads and reloads by result")
            .with_callback(|observer| {
                for result in LOAD_RESULTS {
                    let count = METRICS
                        .loads
                        .get(&ResultLabels { result })
                        .map_or(0, |c| c.get());
                    observer.observe(count, &[KeyValue::new("result", result)]);
                }
            })
            .build();
        let info = meter
            .i64_observable_gauge("cedar_ext_authz_policy_set_info")
            .with_description("The serving policy set version (value 1)")
            .with_callback(|observer| {
                let version = METRICS
                    .version
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if !version.is_empty() {
                    observer.observe(1, &[KeyValue::new("version", version)]);
                }
            })
            .build();
        let policies = meter
            .i64_observable_gauge("cedar_ext_authz_policies")
            .with_description("Policies and templates in the serving set")
            .with_callback(|observer| observer.observe(METRICS.policies.get(), &[]))
            .build();
        OtelInstruments {
            decisions: meter
                .u64_counter("cedar_ext_authz_decisions")
                .with_description("Decisions by outcome and HTTP status")
                .build(),
            latency: meter
                .f64_histogram("cedar_ext_authz_check_duration")
                .with_description("Time to decide one Check")
                .with_unit("s")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            evaluation_errors: meter
                .u64_counter("cedar_ext_authz_evaluation_errors")
                .with_description("Checks with policy evaluation errors")
                .build(),
            untrusted_headers: meter
                .u64_counter("cedar_ext_authz_untrusted_identity_headers")
                .with_description("Checks whose identity headers the trust gate ignored")
                .build(),
            _observed: vec![Box::new(loads), Box::new(info), Box::new(policies)],
        }
    });
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &METRICS.registry);
    text
}

/// Creates both shadow comparison series at 0; called once when a shadow
/// policy set is configured, so the family exists only then.
pub fn shadow_enabled() {
    for result in ["agree", "disagree"] {
        let _ = METRICS.shadow.get_or_create(&ResultLabels { result });
    }
}

/// Counts one shadow comparison.
pub fn shadow_compared(agree: bool) {
    let result = if agree { "agree" } else { "disagree" };
    METRICS.shadow.get_or_create(&ResultLabels { result }).inc();
}
