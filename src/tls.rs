//! TLS and mutual TLS on the gRPC listener, with certificates that rotate.
//!
//! Plaintext is the default (a sidecar on loopback, or a mesh whose proxy
//! terminates mTLS). With `tls` in the config the listener speaks TLS only;
//! with `client_ca_file` as well, every client must present a certificate
//! that chains to that CA, so only the proxies can ask for decisions. The
//! files are read once at start (an unreadable or inconsistent set stops
//! the server) and then checked every second: a changed set is loaded and
//! swapped in whole for new connections, while a broken one (say, a new
//! certificate next to the old key, half-way through a rotation) is logged
//! and ignored until the files change again. Open connections keep the
//! certificate they were made with. [`listener`] runs the accept loop.

pub mod listener;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `tls` in the config: where the listener's certificate, key and,
/// for mutual TLS, the CA of allowed clients are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate
    /// issued by one of them (mutual TLS), or the handshake fails.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Anchors relative paths at the config file's folder.
    pub fn resolve(&mut self, base: &Path) {
        self.cert_file = base.join(&self.cert_file);
        self.key_file = base.join(&self.key_file);
        self.client_ca_file = self.client_ca_file.as_ref().map(|f| base.join(f));
    }

    /// `tls` or `mtls`, for the start-up log.
    pub fn mode(&self) -> &'static str {
        match self.client_ca_file {
            Some(_) => "mtls",
            None => "tls",
        }
    }
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}`: no usable {what} in PEM form: {source}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("`{path}`: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The contents of the TLS files, read together.
struct TlsFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl TlsFiles {
    fn read(config: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            cert: read(&config.cert_file)?,
            key: read(&config.key_file)?,
            client_ca: config.client_ca_file.as_deref().map(read).transpose()?,
        })
    }

    /// What identifies one version of the files.
    fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [&self.cert, &self.key] {
            hash.update(part.len().to_le_bytes());
            hash.update(part);
        }
        hash.update(self.client_ca.as_deref().unwrap_or_default());
        hash.finalize().into()
    }

    /// A rustls server config offering HTTP/2 (gRPC) only.
    fn server_config(&self, config: &TlsConfig) -> Result<ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&config.cert_file, e))?;
        let builder = match (&self.client_ca, &config.client_ca_file) {
            (Some(pem), Some(path)) => {
                let roots = Arc::new(roots(pem, path)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| invalid(path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let chain = certificates(&self.cert, &config.cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|source| TlsError::Pem {
            path: config.key_file.clone(),
            what: "private key",
            source,
        })?;
        let mut server = builder
            .with_single_cert(chain, key)
            .map_err(|e| invalid(&config.key_file, e))?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(server)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_owned(),
        what: "certificate",
        source,
    };
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if chain.is_empty() {
        return Err(pem_error(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(chain)
}

fn roots(pem: &[u8], path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, path)? {
        roots.add(cert).map_err(|e| invalid(path, e))?;
    }
    Ok(roots)
}

/// The serving TLS config, swapped whole when the files change.
pub struct Certificates {
    config: TlsConfig,
    serving: ArcSwap<ServerConfig>,
    /// Digest of the files behind `serving`, and of the last set refused.
    seen: std::sync::Mutex<([u8; 32], Option<[u8; 32]>)>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the files; any problem is an error, so the server does not
    /// start with a broken TLS set.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let files = TlsFiles::read(config)?;
        let serving = files.server_config(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            serving: ArcSwap::from_pointee(serving),
            seen: std::sync::Mutex::new((files.digest(), None)),
        }))
    }

    /// The config new connections are accepted with.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.serving.load_full()
    }

    /// Reads the files again and swaps in a changed, valid set. Returns
    /// `Ok(true)` when it swapped; an error leaves the serving set alone
    /// and is reported once per version of the files.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let files = TlsFiles::read(&self.config)?;
        let digest = files.digest();
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(false);
        };
        if seen.0 == digest || seen.1 == Some(digest) {
            return Ok(false);
        }
        match files.server_config(&self.config) {
            Ok(server) => {
                self.serving.store(Arc::new(server));
                *seen = (digest, None);
                Ok(true)
            }
            Err(error) => {
                seen.1 = Some(digest);
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
