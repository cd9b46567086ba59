//! From CheckRequest to Cedar request, step by step (request facts,
//! identity, Cedar request and entity slice), and the per-Check work
//! around the decision: the CheckResponse and the JSON decision log line.
//!
//! Run with `cargo bench --bench mapping`; uses the bundled policies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "bench code"
)]

mod support;

use std::hint::black_box;
use std::path::Path;

use cedar_ext_authz::authorize;
use cedar_ext_authz::config::Config;
use cedar_ext_authz::identity;
use cedar_ext_authz::mapping;
use cedar_ext_authz::policy::PolicyStore;
use cedar_ext_authz::request::RequestFacts;
use cedar_ext_authz::{response, telemetry};
use criterion::{criterion_group, criterion_main, Criterion};
use prost::Message;

fn setup() -> (Config, PolicyStore) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = repo.join("policies");
    let yaml = support::config_yaml(&dir, "127.0.0.1:9191", true);
    let config = Config::parse(&yaml, Path::new("bench.yaml"), repo).unwrap();
    let store = PolicyStore::load(&config.policy_dir, &config.request.routes).unwrap();
    (config, store)
}

fn mapping(c: &mut Criterion) {
    let (config, store) = setup();
    let check = support::check_request(0);
    let mut group = c.benchmark_group("mapping");
    group.bench_function("facts", |b| {
        b.iter(|| RequestFacts::read(black_box(&check), &config.request).unwrap());
    });
    let facts = RequestFacts::read(&check, &config.request).unwrap();
    let resolve = || {
        let metadata = facts.metadata.as_ref();
        identity::resolve(
            &config.identity,
            &facts.source_principal,
            &facts.headers,
            metadata,
        )
    };
    group.bench_function("identity", |b| b.iter(|| resolve().unwrap()));
    let identity = resolve().unwrap();
    group.bench_function("cedar_request", |b| {
        b.iter(|| mapping::map(black_box(&facts), &identity, &config.request, &store).unwrap());
    });
    group.finish();
}

fn around(c: &mut Criterion) {
    let (config, store) = setup();
    let check = support::check_request(0);
    let outcome = authorize::evaluate(&check, check.encoded_len(), &config, &store);
    let mut group = c.benchmark_group("around");
    group.bench_function("evaluate_bundled", |b| {
        b.iter(|| authorize::evaluate(black_box(&check), check.encoded_len(), &config, &store));
    });
    group.bench_function("response", |b| {
        b.iter(|| response::build(black_box(&outcome), &config, false));
    });
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("decision_log", |b| {
            b.iter(|| telemetry::record_decision(black_box(&outcome), false));
        });
    });
    group.finish();
}

criterion_group!(benches, mapping, around);
criterion_main!(benches);
