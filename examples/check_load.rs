//! A gRPC load generator for `envoy.service.auth.v3.Authorization/Check`,
//! used by `scripts/bench-load.sh` against cedar-ext-authz and the noop
//! baseline (`examples/noop_authz.rs`).
//!
//! `--concurrency` requests are kept in flight over `--connections` HTTP/2
//! connections, cycling through the request shapes of
//! `benches/support/mod.rs`. After `--warmup` seconds it measures for
//! `--duration` seconds and prints one line: requests, requests per
//! second, latency percentiles in microseconds, and answers by kind. With
//! `--rate` each in-flight slot is paced to that total rate (latency is
//! measured from the actual send). `--slow-us` counts Checks slower than a
//! threshold; `--timeline` prints the slowest Check of each 100 ms window.
//!
//! `cargo run --release --example check_load -- --target 127.0.0.1:9191`

#[path = "../benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
struct Args {
    /// `host:port` of the Check server.
    #[arg(long, default_value = "127.0.0.1:9191")]
    target: String,
    /// Checks in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// HTTP/2 connections the in-flight Checks share.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Total Checks per second; 0 sends the next as soon as one answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Count Checks slower than this many microseconds.
    #[arg(long, default_value_t = 0)]
    slow_us: u64,
    /// Print the slowest Check of each 100 ms window.
    #[arg(long)]
    timeline: bool,
    /// Runtime threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One measured Check: when it was sent (ms into the measurement) and how
/// long it took.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    micros: u64,
}

/// What one in-flight slot saw.
#[derive(Debug, Default)]
struct Tally {
    samples: Vec<Sample>,
    ok: u64,
    denied: u64,
    errors: u64,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.samples.extend(other.samples);
        self.ok += other.ok;
        self.denied += other.denied;
        self.errors += other.errors;
    }
}

/// When measuring starts and stops, and the pacing of one slot.
#[derive(Debug, Clone, Copy)]
struct Plan {
    measure_from: Instant,
    stop_at: Instant,
    pace: Option<Duration>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let tally = runtime.block_on(run(&args))?;
    report(&args, tally);
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<Tally> {
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let endpoint = Endpoint::from_shared(format!("http://{}", args.target))?;
        channels.push(endpoint.tcp_nodelay(true).connect().await?);
    }
    let shapes: Arc<Vec<CheckRequest>> = Arc::new(
        (0..support::REQUEST_SHAPES)
            .map(support::check_request)
            .collect(),
    );
    let now = Instant::now();
    let measure_from = now + Duration::from_secs_f64(args.warmup);
    let plan = Plan {
        measure_from,
        stop_at: measure_from + Duration::from_secs_f64(args.duration),
        pace: (args.rate > 0.0)
            .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate)),
    };
    let mut tasks = Vec::new();
    for slot in 0..args.concurrency.max(1) {
        let channel = channels[slot % channels.len()].clone();
        tasks.push(tokio::spawn(slot_loop(channel, shapes.clone(), plan, slot)));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(tally)
}

/// Sends Checks one after the other until the plan stops.
async fn slot_loop(
    channel: Channel,
    shapes: Arc<Vec<CheckRequest>>,
    plan: Plan,
    slot: usize,
) -> Tally {
    let mut client = AuthorizationClient::new(channel);
    let mut ticker = plan.pace.map(|pace| {
        let mut ticker = tokio::time::interval(pace);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut tally = Tally::default();
    let mut k = slot;
    while Instant::now() < plan.stop_at {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let request = shapes[k % shapes.len()].clone();
        k += 1;
        let sent = Instant::now();
        let answer = client.check(request).await;
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(into) = sent.checked_duration_since(plan.measure_from) else {
            continue;
        };
        let at_ms = u64::try_from(into.as_millis()).unwrap_or(u64::MAX);
        tally.samples.push(Sample { at_ms, micros });
        match answer.map(|a| a.into_inner().status.map_or(-1, |s| s.code)) {
            Ok(0) => tally.ok += 1,
            Ok(_) => tally.denied += 1,
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(args: &Args, tally: Tally) {
    let mut micros: Vec<u64> = tally.samples.iter().map(|s| s.micros).collect();
    micros.sort_unstable();
    let slow = micros
        .iter()
        .filter(|&&m| args.slow_us > 0 && m > args.slow_us)
        .count();
    let n = micros.len();
    println!(
        "requests={n} rps={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} ok={} denied={} errors={} slow={slow}",
        n as f64 / args.duration,
        percentile(&micros, 0.50),
        percentile(&micros, 0.90),
        percentile(&micros, 0.99),
        percentile(&micros, 0.999),
        micros.last().copied().unwrap_or(0),
        tally.ok,
        tally.denied,
        tally.errors,
    );
    if args.timeline {
        timeline(&tally.samples);
    }
}

/// The slowest Check and the count of each 100 ms window.
fn timeline(samples: &[Sample]) {
    let mut windows: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for s in samples {
        let window = windows.entry(s.at_ms / 100).or_default();
        window.0 += 1;
        window.1 = window.1.max(s.micros);
    }
    for (window, (count, max)) in windows {
        println!("window_ms={} checks={count} max_us={max}", window * 100);
    }
}
