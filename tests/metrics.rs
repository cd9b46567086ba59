#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Metrics: `/metrics` scraped around real Checks moves by exactly the
//! Checks sent, label set by label set; `/healthz` and `/readyz`; policy
//! load and reload counters; and the OTLP mirror of the same numbers.

mod observability;
mod support;

use std::collections::BTreeMap;

use observability::{
    from_peer, http_check, http_status, policies_with_an_erroring_one, scrape, send_checks, Authz,
    Receiver,
};

const UNTRUSTED_WORKLOAD: &str = "spiffe://cluster.local/ns/untrusted/sa/job";
const DECISIONS: &str = "cedar_ext_authz_decisions_total";

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Every series of `name`'s family whose value changed.
fn changed(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    name: &str,
) -> BTreeMap<String, f64> {
    after
        .keys()
        .filter(|k| k.starts_with(name))
        .map(|k| (k.clone(), delta(before, after, k)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// The mix of Checks the tests send, with the status each must get.
fn mix() -> Vec<(envoy_types::pb::envoy::service::auth::v3::CheckRequest, i32)> {
    let host = "api.example.test";
    let mut mix = Vec::new();
    for i in 0..3 {
        mix.push((http_check("GET", &format!("/public/{i}"), host, &[]), 200));
    }
    // A workload of a namespace that a forbid names.
    for _ in 0..2 {
        let check = http_check("GET", "/app", host, &[]);
        mix.push((from_peer(check, UNTRUSTED_WORKLOAD), 403));
    }
    mix.push((http_check("DELETE", "/app/doc", host, &[]), 401));
    // Identity headers from a peer that is not a trusted forwarder: ignored
    // by the trust gate (counted) and decided as anonymous.
    mix.push((
        http_check("GET", "/public/x", host, &[("remote-user", "mallory")]),
        200,
    ));
    // The erroring policy fires when the Host names a port.
    mix.push((
        http_check("GET", "/public/y", "api.example.test:8443", &[]),
        403,
    ));
    // Malformed: refused before Cedar runs.
    mix.push((http_check("GET", "/public/%2F..", host, &[]), 400));
    mix
}

#[test]
fn counters_move_by_exactly_the_checks_sent() {
    let policies = policies_with_an_erroring_one();
    let server = Authz::start_in(policies.path(), "", &[]);
    let before = scrape(&server);

    let checks = mix();
    let want: Vec<i32> = checks.iter().map(|(_, status)| *status).collect();
    let requests = checks.into_iter().map(|(r, _)| (r, Vec::new())).collect();
    let got: Vec<i32> = send_checks(server.grpc_addr(), requests)
        .iter()
        .map(http_status)
        .collect();
    assert_eq!(got, want);
    let after = scrape(&server);

    let expected: BTreeMap<String, f64> = [
        (series(DECISIONS, r#"outcome="allow",status="200""#), 4.0),
        (series(DECISIONS, r#"outcome="deny",status="403""#), 3.0),
        (series(DECISIONS, r#"outcome="deny",status="401""#), 1.0),
        (series(DECISIONS, r#"outcome="deny",status="400""#), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(changed(&before, &after, DECISIONS), expected);
    let count = "cedar_ext_authz_check_duration_seconds_count";
    assert_eq!(delta(&before, &after, count), 9.0);
    let inf = series(
        "cedar_ext_authz_check_duration_seconds_bucket",
        r#"le="+Inf""#,
    );
    assert_eq!(delta(&before, &after, &inf), 9.0);
    assert!(
        delta(
            &before,
            &after,
            "cedar_ext_authz_check_duration_seconds_sum"
        ) > 0.0
    );
    assert_eq!(
        delta(&before, &after, "cedar_ext_authz_evaluation_errors_total"),
        1.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "cedar_ext_authz_untrusted_identity_headers_total"
        ),
        1.0
    );

    // A second round moves the counters again by exactly as much.
    let again = mix().into_iter().map(|(r, _)| (r, Vec::new())).collect();
    send_checks(server.grpc_addr(), again);
    let last = scrape(&server);
    assert_eq!(changed(&after, &last, DECISIONS), expected);
}

#[test]
fn health_readiness_and_policy_metrics() {
    let policies = policies_with_an_erroring_one();
    let server = Authz::start_in(policies.path(), "", &[]);

    let healthz = server.admin_get("/healthz");
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.text(), "ok\n");
    let metrics = scrape(&server);
    let version = metrics
        .keys()
        .find_map(|k| {
            k.strip_prefix("cedar_ext_authz_policy_set_info{version=\"")
                .and_then(|v| v.strip_suffix("\"}"))
        })
        .expect("policy_set_info names the version")
        .to_owned();
    assert_eq!(
        metrics[&series(
            "cedar_ext_authz_policy_set_info",
            &format!("version=\"{version}\"")
        )],
        1.0
    );
    let readyz = server.admin_get("/readyz");
    assert_eq!(readyz.status, 200);
    assert_eq!(readyz.text(), format!("ready: policy set {version}\n"));
    let count = metrics["cedar_ext_authz_policies"];
    assert!(
        count >= 10.0,
        "the example set has more than 10 policies: {count}"
    );
    let loads = "cedar_ext_authz_policy_loads_total";
    assert_eq!(metrics[&series(loads, r#"result="load_ok""#)], 1.0);

    // A good change reloads: new version, one more policy, reload_ok + 1.
    std::fs::write(
        policies.path().join("extra.cedar"),
        "@id(\"extra\")\npermit (principal, action == Action::\"GET\", resource == Path::\"/extra\");\n",
    )
    .unwrap();
    let reloaded = wait_metrics(&server, "a reload", |m| {
        (m.get(&series(loads, r#"result="reload_ok""#)) == Some(&1.0)).then(|| m.clone())
    });
    assert_eq!(reloaded["cedar_ext_authz_policies"], count + 1.0);
    assert!(!reloaded.contains_key(&series(
        "cedar_ext_authz_policy_set_info",
        &format!("version=\"{version}\"")
    )));
    // A broken change is refused and counted; the last good set serves.
    std::fs::write(policies.path().join("broken.cedar"), "permit (principal,\n").unwrap();
    let failed = wait_metrics(&server, "a failed reload", |m| {
        (m.get(&series(loads, r#"result="failed""#))
            .copied()
            .unwrap_or(0.0)
            >= 1.0)
            .then(|| m.clone())
    });
    assert_eq!(failed["cedar_ext_authz_policies"], count + 1.0);
    let readyz = server.admin_get("/readyz");
    assert_eq!(readyz.status, 200);
    assert!(
        readyz.text().contains("last reload failed"),
        "{}",
        readyz.text()
    );
}

fn wait_metrics<T>(
    server: &Authz,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + support::TIMEOUT;
    loop {
        let metrics = scrape(server);
        if let Some(found) = check(&metrics) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}\n{metrics:#?}\n{}",
            server.dump()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `OTEL_METRICS_EXPORTER=otlp` pushes the same numbers as `/metrics`.
#[test]
fn otlp_metrics_mirror_the_prometheus_numbers() {
    let receiver = Receiver::start();
    let policies = policies_with_an_erroring_one();
    let endpoint = receiver.grpc_url();
    let server = Authz::start_in(
        policies.path(),
        "",
        &[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let requests = mix().into_iter().map(|(r, _)| (r, Vec::new())).collect();
    send_checks(server.grpc_addr(), requests);
    let prometheus = scrape(&server);

    let deadline = std::time::Instant::now() + support::TIMEOUT;
    let decisions = loop {
        let points = receiver.latest_metric("cedar_ext_authz_decisions");
        let total: f64 = points.iter().flatten().map(|p| p.value).sum();
        if total == 9.0 {
            break points.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "OTLP decisions never reached 9: {points:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for point in &decisions {
        let key = series(
            DECISIONS,
            &format!(
                "outcome={},status=\"{}\"",
                point.attributes["outcome"], point.attributes["status"]
            ),
        );
        assert_eq!(prometheus.get(&key), Some(&point.value), "{key}");
    }
    let latency = receiver
        .latest_metric("cedar_ext_authz_check_duration")
        .unwrap();
    assert_eq!(latency[0].value, 9.0);
    let errors = receiver
        .latest_metric("cedar_ext_authz_evaluation_errors")
        .unwrap();
    assert_eq!(errors[0].value, 1.0);
    let loads = receiver
        .latest_metric("cedar_ext_authz_policy_loads")
        .unwrap();
    assert!(loads
        .iter()
        .any(|p| p.attributes["result"] == "load_ok" && p.value == 1.0));
    let info = receiver
        .latest_metric("cedar_ext_authz_policy_set_info")
        .unwrap();
    let version = info[0].attributes["version"].as_str().unwrap();
    assert_eq!(
        prometheus.get(&series(
            "cedar_ext_authz_policy_set_info",
            &format!("version=\"{version}\"")
        )),
        Some(&1.0)
    );
    let policies = receiver.latest_metric("cedar_ext_authz_policies").unwrap();
    assert_eq!(
        Some(&policies[0].value),
        prometheus.get("cedar_ext_authz_policies")
    );
    assert!(receiver.spans().is_empty(), "metrics alone export no spans");
}
