//! Prometheus metrics, served as text by the admin listener.
//!
//! One process-wide registry; recording is a few atomic adds, so it stays
//! on the decision path. Names follow Prometheus conventions with the
//! `cedar_ext_authz_` prefix.

use std::sync::LazyLock;

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
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("cedar_ext_authz");
    let decisions = Family::<DecisionLabels, Counter>::default();
    registry.register(
        "decisions",
        "Decisions by outcome and HTTP status",
        decisions.clone(),
    );
    let buckets = [
        0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1,
    ];
    let latency = Histogram::new(buckets);
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
    Metrics {
        registry,
        decisions,
        latency,
        evaluation_errors,
        untrusted_headers,
        loads,
        info,
        policies,
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
    m.latency.observe(outcome.micros as f64 / 1e6);
    if !d.errors.is_empty() {
        m.evaluation_errors.inc();
    }
    if outcome
        .identity
        .as_ref()
        .is_some_and(|i| !i.ignored_headers.is_empty())
    {
        m.untrusted_headers.inc();
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
    m.policies.set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Records a failed load or reload.
pub fn policy_load_failed() {
    METRICS
        .loads
        .get_or_create(&ResultLabels { result: "failed" })
        .inc();
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &METRICS.registry);
    text
}
