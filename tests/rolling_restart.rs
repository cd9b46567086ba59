//! Graceful shutdown through real Envoy: a rolling restart of two server
//! instances behind deploy/envoy/envoy-ha.yaml (active gRPC health checks)
//! while HTTP load flows through Envoy, with zero failed requests.
//!
//! Each instance in turn gets SIGTERM (as Kubernetes sends it), must exit
//! cleanly after its drain, and is started again on the same port; the
//! next one is stopped only once Envoy sees both healthy again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use support::envoy::{CEDAR_PORT, UPSTREAM_PORT};
use support::{free_port, wait_until, Envoy, HttpRequest, Server, Upstream, TIMEOUT};

/// Port of the second instance in envoy-ha.yaml.
const CEDAR_PORT_B: u16 = 9291;
/// Client threads sending requests through Envoy for the whole test.
const CLIENTS: usize = 4;

/// The bundled policies with the production drain period: anonymous
/// `GET /public/...` is allowed by `public-read`.
const CONFIG: &str = "policy_dir: ../policies\nshutdown_drain_ms: 2000\n";

/// Statuses of every request a client thread sent, and errors.
type Results = Vec<Result<u16, String>>;

fn client(envoy_port: u16, stop: Arc<AtomicBool>) -> JoinHandle<Results> {
    std::thread::spawn(move || {
        let mut results = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = HttpRequest::get("/public/help").try_send(envoy_port);
            results.push(sent.map(|r| r.status));
        }
        results
    })
}

fn healthy_members(envoy: &Envoy) -> u64 {
    envoy.stat("cluster.cedar_ext_authz.membership_healthy")
}

fn wait_both_healthy(envoy: &Envoy) {
    wait_until("Envoy to see both instances healthy", TIMEOUT, || {
        (healthy_members(envoy) == 2).then_some(())
    });
}

/// SIGTERMs `server` under load, checks it drained and exited cleanly
/// after deciding requests, and starts it again on the same port.
fn restart(server: &mut Server, port: u16, envoy: &Envoy) {
    let decided = server.decisions().len();
    assert!(
        decided > 0,
        "instance on {port} got no traffic before its restart"
    );
    let status = server.terminate();
    assert!(status.success(), "exit status {status}\n{}", server.dump());
    let events = server.events();
    for message in ["shutdown: draining", "shutdown complete"] {
        assert!(
            events.iter().any(|e| e["message"] == message),
            "no `{message}`"
        );
    }
    *server = Server::start_on(CONFIG, port);
    wait_both_healthy(envoy);
}

#[test]
fn rolling_restart_behind_envoy_fails_no_request() {
    let upstream = Upstream::start();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Server::start_on(CONFIG, port_a);
    let mut b = Server::start_on(CONFIG, port_b);
    let envoy = Envoy::builder("envoy-ha.yaml")
        .port(CEDAR_PORT, port_a)
        .port(CEDAR_PORT_B, port_b)
        .port(UPSTREAM_PORT, upstream.port())
        .start();
    wait_both_healthy(&envoy);
    envoy.warm_up(&HttpRequest::get("/public/help"), 200);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| client(envoy.http_port(), stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    restart(&mut a, port_a, &envoy);
    restart(&mut b, port_b, &envoy);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);

    let results: Results = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let failed: Vec<_> = results.iter().filter(|r| **r != Ok(200)).collect();
    println!(
        "rolling restart: {} requests through Envoy, {} failed; ext_authz errors {}",
        results.len(),
        failed.len(),
        envoy.stat("http.ingress_http.ext_authz.error")
    );
    assert!(
        results.len() > 100,
        "too little load: {} requests",
        results.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first: {:?}\n{}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        envoy.dump()
    );
    assert!(
        !a.decisions().is_empty() && !b.decisions().is_empty(),
        "restarted instances idle"
    );
}
