//! Start-up and shutdown of the `serve` command.
//!
//! Start-up loads the config and the policy set before any listener opens:
//! the process refuses to start on any error. Health reports SERVING only
//! once the listener is up with a valid set. On SIGTERM or Ctrl-C, health
//! turns NOT_SERVING, a drain period lets Envoy's health checks move
//! traffic away, then the listener stops taking connections and in-flight
//! Checks finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Server;

use crate::config::Config;
use crate::policy::PolicyStore;
use crate::server::{CheckService, ExplainService, Shared, DESCRIPTOR_SET};
use crate::tls::Certificates;

/// Service names whose health is reported besides the server as a whole.
const HEALTH_SERVICES: &[&str] = &[
    "envoy.service.auth.v3.Authorization",
    "cedar_ext_authz.v1.Explainer",
];

/// Longest wait at start-up for assertion keys fetched from a URL; after
/// it the server serves anyway, and their tokens are refused (401) until
/// the keys arrive.
const KEYS_WAIT: Duration = Duration::from_secs(5);

/// Loads a policy folder on the loader thread, as every reload does.
async fn load(
    dir: &std::path::Path,
    routes: &[crate::request::routes::RouteConfig],
) -> anyhow::Result<PolicyStore> {
    let (dir, routes) = (dir.to_owned(), routes.to_vec());
    let loaded = crate::policy::loader::run(move || PolicyStore::load(&dir, &routes)).await;
    Ok(loaded.ok_or_else(|| anyhow::anyhow!("the policy loader thread stopped"))??)
}

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = load(&config.policy_dir, &config.request.routes).await?;
    crate::metrics::policy_loaded(&store.version, store.policy_count, false);
    tracing::info!(
        policy_set.version = %store.version,
        policy.count = store.policy_count,
        policy.dir = %config.policy_dir.display(),
        load.ms = started.elapsed().as_millis() as u64,
        "policies loaded"
    );
    let drain = Duration::from_millis(config.shutdown_drain_ms);
    let shadow = match &config.shadow_policy_dir {
        Some(dir) => Some(load(dir, &config.request.routes).await?),
        None => None,
    };
    if shadow.is_some() {
        crate::metrics::shadow_enabled();
    }
    let shared = Shared::with_shadow(config, store, shadow);
    let _watcher = crate::reload::spawn(shared.clone())?;
    // Assertion keys load and refresh off the request path.
    let assertions = &shared.config.identity.jwt_assertions;
    let _keys = crate::identity::jwt::keys::spawn_refresh(assertions, KEYS_WAIT).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let tls = shared.config.tls.as_ref();
    let certificates = tls.map(crate::tls::Certificates::load).transpose()?;
    let grpc = tokio::net::TcpListener::bind(shared.config.listen).await?;
    let admin = crate::admin::bind(shared.config.admin_listen).await?;
    tracing::info!(
        listen = %grpc.local_addr()?,
        admin_listen = %admin.local_addr()?,
        tls = tls.map_or("off", crate::tls::TlsConfig::mode),
        "serving"
    );
    let admin_task = tokio::spawn(crate::admin::serve(
        admin,
        shared.clone(),
        stopped(stop_rx.clone()),
    ));
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in HEALTH_SERVICES.iter().chain(&[""]) {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let grpc_task = tokio::spawn(grpc_server(
        shared.clone(),
        (grpc, certificates),
        health,
        stop_rx,
    ));

    shutdown_signal().await;
    tracing::info!(drain_ms = drain.as_millis() as u64, "shutdown: draining");
    shared.start_draining();
    for name in HEALTH_SERVICES.iter().chain(&[""]) {
        reporter
            .set_service_status(*name, tonic_health::ServingStatus::NotServing)
            .await;
    }
    tokio::time::sleep(drain).await;
    let _ = stop_tx.send(true);
    grpc_task.await??;
    admin_task.await??;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn grpc_server(
    shared: Arc<Shared>,
    (listener, tls): (tokio::net::TcpListener, Option<Arc<Certificates>>),
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl before 1.9 speaks only the v1alpha protocol.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let router = Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(CheckService::server(shared.clone()))
        .add_service(ExplainService::server(shared));
    let shutdown = stopped(stop.clone());
    match tls {
        Some(certificates) => {
            let incoming = crate::tls::listener::incoming(listener, certificates, stopped(stop));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        None => {
            router
                .serve_with_incoming_shutdown(plain_incoming(listener), shutdown)
                .await?;
        }
    }
    Ok(())
}

/// Accepted plaintext connections, with Nagle's algorithm off as on the
/// TLS path. tonic sets `TCP_NODELAY` only on listeners it binds itself,
/// not on connections handed to it; without it, an answer written in two
/// segments waits for the peer's delayed ACK (40 ms on Linux), which the
/// load benchmark showed as a p99 of 42 ms on loopback.
fn plain_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        if let Ok(tcp) = &accepted {
            let _ = tcp.set_nodelay(true);
        }
        accepted
    })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn plaintext_connections_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = Box::pin(super::plain_incoming(listener));
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
