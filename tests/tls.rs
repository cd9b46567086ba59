//! TLS and mutual TLS on the gRPC listener, against the real binary:
//! clients with a certificate from the configured CA get decisions; no
//! certificate, a certificate from another CA, or plaintext is refused at
//! the handshake and never reaches a handler; rotated certificate files
//! are served to new connections while open connections carry on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod support;

use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use support::{grpcurl, ClientIdentity, Server, TestPki, GATEWAY_SPIFFE_ID, TIMEOUT};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The README's example: a trusted gateway forwards `sam` (staff) asking
/// for the admin area, which the bundled policies deny with 403.
fn admin_request() -> CheckRequest {
    cedar_ext_authz::cli::parse_check_request(&format!(
        r#"{{"attributes": {{
          "source": {{"principal": "{GATEWAY_SPIFFE_ID}"}},
          "request": {{"http": {{"method": "GET", "host": "app.example.test",
            "path": "/admin/users",
            "headers": {{"remote-user": "sam", "remote-groups": "staff"}}}}}}}}}}"#
    ))
    .unwrap()
}

/// The bundled config with TLS from `pki`'s server certificate; with
/// `mtls`, clients must present a certificate from `pki`'s CA.
fn start(pki: &TestPki, mtls: bool) -> Server {
    let dir = pki.dir().display();
    let ca = if mtls {
        format!(", client_ca_file: {dir}/ca.pem")
    } else {
        String::new()
    };
    Server::start(&format!(
        "policy_dir: ../policies\n\
         identity: {{trusted_forwarders: [\"{GATEWAY_SPIFFE_ID}\"]}}\n\
         tls: {{cert_file: {dir}/server.pem, key_file: {dir}/server-key.pem{ca}}}\n"
    ))
}

/// A TLS client trusting `ca_pem`, presenting `client` if given.
fn tls_config(ca_pem: &str, client: Option<&ClientIdentity>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    match client {
        Some(c) => config.identity(Identity::from_pem(&c.cert_pem, &c.key_pem)),
        None => config,
    }
}

fn ca_pem(pki: &TestPki) -> String {
    std::fs::read_to_string(pki.ca_pem_path()).unwrap()
}

/// Connects and sends one Check on a new connection; the gRPC code of
/// the response inside, or the error text.
async fn check_over(server: &Server, tls: Option<ClientTlsConfig>) -> Result<i32, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", server.grpc_addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).unwrap();
    }
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    check_on(channel).await
}

async fn check_on(channel: Channel) -> Result<i32, String> {
    let response = AuthorizationClient::new(channel)
        .check(admin_request())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(response.into_inner().status.map_or(-1, |s| s.code))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Waits for the server to log a refused handshake.
fn assert_handshake_refused(server: &Server) {
    support::wait_until("a `tls: handshake refused` log line", TIMEOUT, || {
        server
            .events()
            .into_iter()
            .find(|e| e["message"] == "tls: handshake refused")
    });
    assert!(
        server.decisions().is_empty(),
        "a refused client was decided"
    );
}

const PERMISSION_DENIED: i32 = 7;

#[test]
fn mtls_client_with_a_certificate_from_the_ca_gets_decisions() {
    let pki = TestPki::generate();
    let server = start(&pki, true);
    let client = pki.client(GATEWAY_SPIFFE_ID);
    let code = runtime().block_on(check_over(
        &server,
        Some(tls_config(&ca_pem(&pki), Some(&client))),
    ));
    assert_eq!(code, Ok(PERMISSION_DENIED), "{}", server.dump());
    let serving = server
        .events()
        .into_iter()
        .find(|e| e["message"] == "serving");
    assert_eq!(serving.unwrap()["tls"], "mtls");
}

#[test]
fn mtls_client_without_a_certificate_is_refused_at_the_handshake() {
    let pki = TestPki::generate();
    let server = start(&pki, true);
    let result = runtime().block_on(check_over(&server, Some(tls_config(&ca_pem(&pki), None))));
    assert!(
        result.is_err(),
        "answered without a client certificate: {result:?}"
    );
    assert_handshake_refused(&server);
}

#[test]
fn mtls_client_with_a_certificate_from_another_ca_is_refused_at_the_handshake() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let server = start(&pki, true);
    let stranger = other.client(GATEWAY_SPIFFE_ID);
    let tls = tls_config(&ca_pem(&pki), Some(&stranger));
    let result = runtime().block_on(check_over(&server, Some(tls)));
    assert!(
        result.is_err(),
        "answered a foreign certificate: {result:?}"
    );
    assert_handshake_refused(&server);
}

#[test]
fn plaintext_client_is_refused_on_a_tls_listener() {
    let pki = TestPki::generate();
    let server = start(&pki, false);
    let result = runtime().block_on(check_over(&server, None));
    assert!(result.is_err(), "plaintext answered: {result:?}");
    assert_handshake_refused(&server);
}

#[test]
fn tls_without_client_ca_serves_clients_without_certificates() {
    let pki = TestPki::generate();
    let server = start(&pki, false);
    let code = runtime().block_on(check_over(&server, Some(tls_config(&ca_pem(&pki), None))));
    assert_eq!(code, Ok(PERMISSION_DENIED), "{}", server.dump());
}

/// Copies `from`'s server certificate and key over the files the server
/// reads, certificate first, as a non-atomic writer would.
fn rotate(into: &Path, from: &TestPki) {
    for file in ["server.pem", "server-key.pem"] {
        std::fs::copy(from.dir().join(file), into.join(file)).unwrap();
    }
}

#[test]
fn rotated_certificate_files_are_served_to_new_connections() {
    let old = TestPki::generate();
    let new = TestPki::generate();
    let server = start(&old, false);
    let rt = runtime();
    let trusts_old = tls_config(&ca_pem(&old), None);
    let trusts_new = tls_config(&ca_pem(&new), None);
    assert_eq!(
        rt.block_on(check_over(&server, Some(trusts_old.clone()))),
        Ok(PERMISSION_DENIED)
    );
    assert!(rt
        .block_on(check_over(&server, Some(trusts_new.clone())))
        .is_err());
    let open = rt.block_on(async {
        let url = format!("https://{}", server.grpc_addr());
        Endpoint::from_shared(url)
            .unwrap()
            .tls_config(trusts_old.clone())
            .unwrap()
            .connect()
            .await
    });
    let open = open.unwrap();

    rotate(old.dir(), &new);
    support::wait_until("the rotated certificate to be served", TIMEOUT, || {
        rt.block_on(check_over(&server, Some(trusts_new.clone())))
            .ok()
    });
    assert!(
        rt.block_on(check_over(&server, Some(trusts_old))).is_err(),
        "old certificate still served"
    );
    assert_eq!(
        rt.block_on(check_on(open)),
        Ok(PERMISSION_DENIED),
        "open connection dropped"
    );
    assert!(server
        .events()
        .iter()
        .any(|e| e["message"] == "tls: certificates reloaded"));
}

#[test]
fn grpcurl_with_a_client_certificate_lists_the_services() {
    let pki = TestPki::generate();
    let server = start(&pki, true);
    let client = pki.client(GATEWAY_SPIFFE_ID);
    std::fs::write(pki.dir().join("client.pem"), &client.cert_pem).unwrap();
    std::fs::write(pki.dir().join("client-key.pem"), &client.key_pem).unwrap();
    let path = |name: &str| pki.dir().join(name).display().to_string();
    let addr = format!("localhost:{}", server.grpc_port());
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client-key.pem"));
    let listed = grpcurl(
        &["-cacert", &ca, "-cert", &cert, "-key", &key, &addr, "list"],
        "",
    );
    listed.assert_success("grpcurl list over mTLS");
    assert!(
        listed
            .stdout
            .contains("envoy.service.auth.v3.Authorization"),
        "{}",
        listed.stdout
    );
    let refused = grpcurl(&["-cacert", &ca, &addr, "list"], "");
    assert!(
        !refused.status.success(),
        "grpcurl without a certificate listed services"
    );
}
