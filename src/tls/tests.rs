//! Loading and reloading the TLS files: what is accepted, what is refused,
//! and that a refused set never replaces the serving one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::path::Path;
use std::sync::Arc;

use super::*;

/// A self-signed certificate and its key, PEM.
fn self_signed() -> (String, String) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (pair.cert.pem(), pair.signing_key.serialize_pem())
}

/// Writes `cert.pem`, `key.pem` (and `ca.pem` when given) into `dir`.
fn write(dir: &Path, cert: &str, key: &str, ca: Option<&str>) -> TlsConfig {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    if let Some(ca) = ca {
        std::fs::write(dir.join("ca.pem"), ca).unwrap();
    }
    TlsConfig {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        client_ca_file: ca.map(|_| dir.join("ca.pem")),
    }
}

#[test]
fn valid_certificate_and_key_load_with_h2_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let config = write(dir.path(), &cert, &key, None);
    let certificates = Certificates::load(&config).unwrap();
    assert_eq!(certificates.current().alpn_protocols, vec![b"h2".to_vec()]);
}

#[test]
fn key_of_another_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let config = write(dir.path(), &cert, &other_key, None);
    let error = Certificates::load(&config).unwrap_err().to_string();
    assert!(error.contains("key.pem"), "{error}");
}

#[test]
fn missing_file_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let mut config = write(dir.path(), &cert, &key, None);
    config.client_ca_file = Some(dir.path().join("absent-ca.pem"));
    let error = Certificates::load(&config).unwrap_err().to_string();
    assert!(error.contains("absent-ca.pem"), "{error}");
}

#[test]
fn files_without_pem_items_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    for (cert, key, ca) in [
        ("not pem", key.as_str(), None),
        (cert.as_str(), "not pem", None),
        (cert.as_str(), key.as_str(), Some("not pem")),
    ] {
        let config = write(dir.path(), cert, key, ca);
        assert!(Certificates::load(&config).is_err(), "{cert} {key} {ca:?}");
    }
}

#[test]
fn client_ca_file_with_a_certificate_loads_as_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (ca, _) = self_signed();
    let config = write(dir.path(), &cert, &key, Some(&ca));
    assert_eq!(config.mode(), "mtls");
    assert!(Certificates::load(&config).is_ok());
}

#[test]
fn reload_swaps_only_a_changed_valid_set() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let config = write(dir.path(), &cert, &key, None);
    let certificates = Certificates::load(&config).unwrap();
    let first = certificates.current();
    assert!(!certificates.reload().unwrap(), "unchanged files swapped");
    assert!(Arc::ptr_eq(&first, &certificates.current()));

    let (new_cert, new_key) = self_signed();
    write(dir.path(), &new_cert, &new_key, None);
    assert!(certificates.reload().unwrap(), "rotated files not swapped");
    assert!(!Arc::ptr_eq(&first, &certificates.current()));
}

#[test]
fn half_rotated_files_keep_the_serving_set_and_are_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let config = write(dir.path(), &cert, &key, None);
    let certificates = Certificates::load(&config).unwrap();
    let serving = certificates.current();

    let (new_cert, _) = self_signed();
    write(dir.path(), &new_cert, &key, None);
    assert!(certificates.reload().is_err(), "mismatched pair accepted");
    assert!(
        !certificates.reload().unwrap(),
        "same refusal reported twice"
    );
    assert!(Arc::ptr_eq(&serving, &certificates.current()));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let yaml = "tls:\n  cert_file: certs/tls.crt\n  key_file: certs/tls.key\n";
    let config = crate::config::Config::parse(yaml, Path::new("c.yaml"), Path::new("/etc/c"));
    let tls = config.unwrap().tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/etc/c/certs/tls.crt"));
    assert_eq!(tls.key_file, Path::new("/etc/c/certs/tls.key"));
    assert_eq!(tls.mode(), "tls");
}

#[test]
fn unknown_tls_key_is_refused() {
    let yaml = "tls:\n  cert_file: a\n  key_file: b\n  client_ca: c\n";
    let error = crate::config::Config::parse(yaml, Path::new("c.yaml"), Path::new("/"));
    assert!(error.unwrap_err().to_string().contains("client_ca"));
}
