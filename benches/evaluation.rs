//! Decision cost against generated policy sets of 10 to 10,000 policies,
//! with the policy index on and off, and the whole Check path
//! (`authorize::evaluate`) with the index on.
//!
//! Run with `cargo bench --bench evaluation`. Under `cargo test` (no
//! `--bench` argument) only the smallest set runs, once, so the default
//! test run stays fast.

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
use cedar_ext_authz::decision;
use cedar_ext_authz::mapping::CedarRequest;
use cedar_ext_authz::policy::PolicyStore;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use prost::Message;

const SIZES: &[usize] = &[10, 100, 1_000, 10_000];

/// A generated set, its config and one mapped request.
struct Setup {
    _dir: tempfile::TempDir,
    config: Config,
    store: PolicyStore,
    cedar: CedarRequest,
}

fn setup(count: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    support::write_policy_dir(&policies, count).unwrap();
    let yaml = support::config_yaml(&policies, "127.0.0.1:9191", true);
    let config = Config::parse(&yaml, Path::new("bench.yaml"), dir.path()).unwrap();
    let store = PolicyStore::load(&config.policy_dir, &config.request.routes).unwrap();
    let check = support::check_request(0);
    let outcome = authorize::evaluate(&check, check.encoded_len(), &config, &store);
    assert!(outcome.decision.is_allow(), "{:?}", outcome.decision);
    let cedar = outcome.cedar.unwrap();
    Setup {
        _dir: dir,
        config,
        store,
        cedar,
    }
}

/// Every size under `cargo bench`; only the smallest under `cargo test`.
fn sizes() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        SIZES
    } else {
        &SIZES[..1]
    }
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for &count in sizes() {
        let s = setup(count);
        for index in [true, false] {
            let mut config = s.config.decision.clone();
            config.policy_index = index;
            let name = if index { "index" } else { "whole_set" };
            group.bench_function(BenchmarkId::new(name, count), |b| {
                b.iter(|| decision::decide(black_box(&s.cedar), &s.store, false, &config));
            });
        }
    }
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for &count in sizes() {
        let s = setup(count);
        let check = support::check_request(0);
        let len = check.encoded_len();
        group.bench_function(BenchmarkId::from_parameter(count), |b| {
            b.iter(|| authorize::evaluate(black_box(&check), len, &s.config, &s.store));
        });
    }
    group.finish();
}

/// The index's own work, finding candidates; and, for comparison, what
/// deciding used to do with them: build a policy set of them per request
/// and ask Cedar's authorizer (`decide/index` evaluates them directly).
fn index_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    for &count in sizes() {
        let s = setup(count);
        let (index, r) = (&s.store.index, &s.cedar);
        let candidates = || index.candidates(&r.principal, &r.action, &r.resource, &r.entities);
        group.bench_function(BenchmarkId::new("candidates", count), |b| {
            b.iter(|| black_box(candidates()));
        });
        let picks = candidates();
        group.bench_function(BenchmarkId::new("subset", count), |b| {
            b.iter(|| index.subset(black_box(&picks)).unwrap());
        });
        let set = index.subset(&picks).unwrap();
        let authorizer = cedar_policy::Authorizer::new();
        group.bench_function(BenchmarkId::new("cedar_authorizer", count), |b| {
            b.iter(|| authorizer.is_authorized(black_box(&r.request), &set, &r.entities));
        });
    }
    group.finish();
}

criterion_group!(benches, decide, evaluate, index_parts);
criterion_main!(benches);
