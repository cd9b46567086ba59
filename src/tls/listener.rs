//! The TLS accept loop: TCP connections in, finished TLS streams out.
//!
//! tonic's own TLS settings are fixed when the server starts, so this
//! module accepts TCP connections itself, runs each handshake in its own
//! task with the serving [`Certificates`] of that moment (a slow or hostile
//! client holds up nobody else, and at most [`HANDSHAKE_TIMEOUT`]), and
//! hands the streams that completed their handshake to
//! `serve_with_incoming_shutdown`. The same loop polls the certificate
//! files. A failed handshake (no client certificate, one from another CA,
//! plaintext on a TLS port) is logged and never reaches a gRPC handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use super::Certificates;

/// Longest a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate files are compared with the serving set.
/// cert-manager renews well before expiry, so a second is plenty, and
/// reading three small files costs nothing.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (say, out of file descriptors) so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connections whose handshake finished but that tonic has not taken yet.
const READY_QUEUE: usize = 64;

/// What the server reads connections from.
pub type Incoming = ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>;

/// Starts the accept loop on `listener`; it stops, closing the listening
/// socket, when `stop` completes or the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    certificates: Arc<Certificates>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Incoming {
    let (ready, incoming) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept_loop(listener, certificates, ready, stop));
    ReceiverStream::new(incoming)
}

type Ready = mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>;

async fn accept_loop(
    listener: TcpListener,
    certificates: Arc<Certificates>,
    ready: Ready,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut reload = tokio::time::interval(RELOAD_INTERVAL);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = None;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = ready.closed() => break,
            _ = reload.tick() => reload_files(&certificates, &mut last_error),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = TlsAcceptor::from(certificates.current());
                    tokio::spawn(handshake(acceptor, tcp, peer, ready.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "tls: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, ready: Ready) {
    // gRPC exchanges small frames: do not wait to fill packets.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let _ = ready.send(Ok(stream)).await;
        }
        Ok(Err(error)) => {
            tracing::info!(peer = %peer, %error, "tls: handshake refused");
        }
        Err(_) => {
            tracing::info!(peer = %peer, "tls: handshake timed out");
        }
    }
}

/// Reloads changed files; each distinct error is logged once.
fn reload_files(certificates: &Certificates, last_error: &mut Option<String>) {
    match certificates.reload() {
        Ok(true) => {
            *last_error = None;
            tracing::info!("tls: certificates reloaded");
        }
        Ok(false) => *last_error = None,
        Err(error) => {
            let text = error.to_string();
            if last_error.as_deref() != Some(text.as_str()) {
                tracing::warn!(error = %text, "tls: reload failed, keeping the serving certificates");
                *last_error = Some(text);
            }
        }
    }
}
