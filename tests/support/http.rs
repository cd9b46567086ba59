//! A raw HTTP/1.1 client: the request line and headers go out byte for
//! byte as written (no path normalisation, repeated headers, any method
//! spelling), over plain TCP or TLS with a client certificate. One request
//! per connection (`connection: close`); the response is read to EOF.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use serde_json::Value;

use super::{ClientIdentity, TIMEOUT};

/// A request as it will be written.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    /// The request target exactly as sent: `/a/../b`, `/x?y`, `%2F`...
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A GET of `target` with `host: localhost`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// A request with any method token (e.g. lower-case `get`).
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: vec![("host".to_owned(), "localhost".to_owned())],
            body: Vec::new(),
        }
    }

    /// Adds a header; call twice to send it twice.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body (a content-length header is added when sent).
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.as_bytes().to_vec();
        self
    }

    /// The bytes written to the connection.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends over plain TCP to 127.0.0.1:`port`; panics on any failure.
    pub fn send(&self, port: u16) -> HttpResponse {
        self.try_send(port)
            .unwrap_or_else(|e| panic!("{} {} to port {port}: {e}", self.method, self.target))
    }

    /// Sends over plain TCP to 127.0.0.1:`port`.
    pub fn try_send(&self, port: u16) -> Result<HttpResponse, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&self.to_bytes())
            .map_err(|e| e.to_string())?;
        let raw = read_to_end(&mut stream)?;
        HttpResponse::parse(&raw)
    }

    /// Sends over TLS to 127.0.0.1:`port`, trusting `ca_der` for the
    /// server (named `localhost`) and presenting `client` as the client
    /// certificate; panics on any failure.
    pub fn send_tls(&self, port: u16, ca_der: &[u8], client: &ClientIdentity) -> HttpResponse {
        self.try_send_tls(port, ca_der, Some(client))
            .unwrap_or_else(|e| panic!("{} {} over TLS: {e}", self.method, self.target))
    }

    /// Sends over TLS, with a client certificate or none; a refused
    /// handshake is an `Err`.
    pub fn try_send_tls(
        &self,
        port: u16,
        ca_der: &[u8],
        client: Option<&ClientIdentity>,
    ) -> Result<HttpResponse, String> {
        let config = tls_config(ca_der, client);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
        let mut tls = rustls::StreamOwned::new(conn, connect(port));
        tls.write_all(&self.to_bytes())
            .map_err(|e| format!("writing over TLS: {e}"))?;
        tls.flush().map_err(|e| format!("flushing TLS: {e}"))?;
        let raw = read_to_end(&mut tls)?;
        HttpResponse::parse(&raw)
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Reads until the peer closes. A TLS peer that closes without
/// close_notify still ends the response.
fn read_to_end(stream: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => {
                return Err(format!(
                    "reading the response: {e} (after {} bytes)",
                    raw.len()
                ))
            }
        }
    }
    Ok(raw)
}

fn tls_config(ca_der: &[u8], client: Option<&ClientIdentity>) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .expect("CA certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    match client {
        Some(client) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(client.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_der.clone())),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Parses a whole HTTP/1.1 response (content-length, chunked, or to
    /// EOF).
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[end + 4..];
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let body = if chunked {
            dechunk(rest)?
        } else if let Some(length) = length {
            rest.get(..length)
                .ok_or_else(|| format!("body shorter than content-length {length}"))?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The only value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|e| e.to_string())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}
