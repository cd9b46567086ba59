//! A do-nothing ext_authz server: answers every Check with OK and no
//! header changes, reading nothing. It is the baseline of
//! `scripts/bench-load.sh` (the cost of the gRPC hop itself) and no part
//! of the product's serving path.
//!
//! It is served like cedar-ext-authz serves (tonic, a multi-threaded Tokio
//! runtime, a plain TCP listener), so the difference between the two is
//! the work of deciding.
//!
//! `cargo run --release --example noop_authz -- 127.0.0.1:9291`

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use envoy_types::pb::google::rpc;
use tonic::{Request, Response, Status};

#[derive(Debug, Default)]
struct Noop;

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse {
            status: Some(rpc::Status::default()),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9291".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("noop_authz listening on {}", listener.local_addr()?);
    // As tonic does on listeners it binds, and as cedar-ext-authz does.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |accepted| {
            if let Ok(tcp) = &accepted {
                let _ = tcp.set_nodelay(true);
            }
            accepted
        },
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(Noop))
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    Ok(())
}
