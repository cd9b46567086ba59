//! Load: 256 concurrent Check streams over several HTTP/2 connections
//! against the real server binary for a bounded time.
//!
//! Zero failed Checks (every answer a CheckResponse with the verdict the
//! bundled policies give), no starved stream (p99 within a few times the
//! p50, no Check near Envoy's timeouts), and resident memory that stays
//! level once warm. The numbers are printed (`--nocapture`) so a run can
//! be compared with docs/security.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use support::{Server, GATEWAY_SPIFFE_ID};
use tonic::transport::{Channel, Endpoint};

/// Concurrent streams in flight for the whole run.
const STREAMS: usize = 256;
/// HTTP/2 connections the streams share.
const CONNECTIONS: usize = 8;
/// How long the load lasts.
const DURATION: Duration = Duration::from_secs(10);
/// Fairness, not speed: with every stream sending its next Check as soon as
/// the last one answers, latency is mostly queueing (Little's law: streams
/// over throughput), so p50 scales with the machine and the build. A
/// starved stream shows as a p99 far beyond the p50; speed is measured by
/// `scripts/bench-load.sh` (docs/benchmarks.md), not here.
const P99_OVER_P50: u32 = 4;
/// No Check may come near Envoy's ext_authz timeouts.
const MAX_BOUND: Duration = Duration::from_secs(5);
/// Largest accepted growth of resident memory from a quarter of the run
/// (warm) to its end.
const RSS_GROWTH_BOUND: f64 = 0.30;

/// Requests with the verdict (gRPC code inside the CheckResponse) the
/// bundled policies give them.
fn workload() -> Vec<(CheckRequest, i32)> {
    let case = |method: &str, path: &str, user: Option<(&str, &str)>, code| {
        let headers = user.map_or(String::new(), |(u, g)| {
            format!(r#", "headers": {{"remote-user": "{u}", "remote-groups": "{g}"}}"#)
        });
        let json = format!(
            r#"{{"attributes": {{"source": {{"principal": "{GATEWAY_SPIFFE_ID}"}},
              "request": {{"http": {{"method": "{method}", "host": "app.example.test",
              "path": "{path}"{headers}}}}}}}}}"#
        );
        (
            cedar_ext_authz::cli::parse_check_request(&json).unwrap(),
            code,
        )
    };
    vec![
        case("GET", "/app/dashboard", Some(("sam", "staff")), 0),
        case("GET", "/admin/users", Some(("sam", "staff")), 7),
        case("POST", "/app/notes", None, 16),
        case("GET", "/public/help", None, 0),
    ]
}

/// What every stream records.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: Vec<String>,
}

async fn stream(channel: Channel, workload: Arc<Vec<(CheckRequest, i32)>>, end: Instant) -> Tally {
    let mut client = AuthorizationClient::new(channel);
    let mut tally = Tally::default();
    let mut i = 0;
    while Instant::now() < end {
        let (request, expected) = &workload[i % workload.len()];
        i += 1;
        let started = Instant::now();
        let answer = client.check(request.clone()).await;
        tally.latencies.push(started.elapsed());
        match answer.map(|r| r.into_inner().status.map(|s| s.code)) {
            Ok(Some(code)) if code == *expected => {}
            other => tally
                .failures
                .push(format!("{other:?} (expected {expected})")),
        }
    }
    tally
}

async fn connect(server: &Server) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        let endpoint = Endpoint::from_shared(format!("http://{}", server.grpc_addr())).unwrap();
        channels.push(endpoint.connect().await.unwrap());
    }
    channels
}

/// Samples the server's RSS once, at a quarter of the run.
fn sample_rss_at_quarter(server: &Server, started: Instant) -> u64 {
    std::thread::sleep((started + DURATION / 4).saturating_duration_since(Instant::now()));
    server.rss_kib()
}

/// The median time the server spent deciding, from its decision log.
fn median_eval_micros(server: &Server) -> u64 {
    let mut micros: Vec<u64> = server
        .decisions()
        .iter()
        .filter_map(|e| e["eval.micros"].as_u64())
        .collect();
    micros.sort_unstable();
    micros.get(micros.len() / 2).copied().unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

#[test]
fn concurrent_checks_all_succeed_with_bounded_p99_and_level_memory() {
    let server = Server::bundled();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let workload = Arc::new(workload());
    let channels = runtime.block_on(connect(&server));
    let started = Instant::now();
    let end = started + DURATION;
    let tasks: Vec<_> = (0..STREAMS)
        .map(|n| {
            runtime.spawn(stream(
                channels[n % CONNECTIONS].clone(),
                workload.clone(),
                end,
            ))
        })
        .collect();
    let warm_rss = sample_rss_at_quarter(&server, started);
    let tallies: Vec<Tally> = runtime.block_on(async {
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    });
    let end_rss = server.rss_kib();
    let elapsed = started.elapsed();
    let eval = median_eval_micros(&server);

    let failures: Vec<String> = tallies.iter().flat_map(|t| t.failures.clone()).collect();
    let mut latencies: Vec<Duration> = tallies.into_iter().flat_map(|t| t.latencies).collect();
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let growth = (end_rss as f64 - warm_rss as f64) / warm_rss as f64;
    let report = format!(
        "{} Checks in {elapsed:.1?} ({:.0}/s) over {STREAMS} streams and {CONNECTIONS} \
         connections: p50 {p50:.1?}, p99 {p99:.1?}, max {:.1?}; RSS {warm_rss} KiB at 1/4, \
         {end_rss} KiB at the end ({:+.1}%); {} failed; median eval.micros {eval}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.last().copied().unwrap_or_default(),
        growth * 100.0,
        failures.len()
    );
    println!("load: {report}");
    assert!(
        failures.is_empty(),
        "{report}\nfirst failures: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert!(
        p99 <= p50 * P99_OVER_P50,
        "p99 over {P99_OVER_P50}x p50: {report}"
    );
    let max = latencies.last().copied().unwrap_or_default();
    assert!(max < MAX_BOUND, "a Check took {max:?}: {report}");
    assert!(growth < RSS_GROWTH_BOUND, "memory grew: {report}");
}
