#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
mod observability;
mod support;
use observability::*;

fn run(server: &Authz) -> std::time::Duration {
    let reqs = |n: usize| {
        (0..n)
            .map(|i| {
                (
                    http_check("GET", &format!("/public/{i}"), "a.test", &[]),
                    vec![(
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    )],
                )
            })
            .collect()
    };
    send_checks(server.grpc_addr(), reqs(200));
    let t = std::time::Instant::now();
    send_checks(server.grpc_addr(), reqs(3000));
    t.elapsed() / 3000
}

#[test]
fn measure() {
    let receiver = Receiver::start();
    let off = Authz::start("", &[("RUST_LOG", "warn")]);
    let on = Authz::start(
        "",
        &[
            ("RUST_LOG", "warn"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    for _ in 0..2 {
        println!("off {:?}", run(&off));
        println!("on  {:?}", run(&on));
    }
    println!("received {}", receiver.spans().len());
}
