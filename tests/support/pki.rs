//! Test certificates, made fresh for each test with rcgen: a CA, Envoy's
//! server certificate, and client certificates whose URI SAN is a SPIFFE
//! id (Envoy passes that SAN to the server as `source.principal`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The trusted forwarder of the bundled config (the Istio ingress gateway).
pub const GATEWAY_SPIFFE_ID: &str =
    "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";

/// A mesh workload that is not a trusted forwarder.
pub const UNTRUSTED_SPIFFE_ID: &str = "spiffe://cluster.local/ns/app/sa/web";

/// A client certificate and its key, DER-encoded, for the TLS client.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    /// The same certificate and key in PEM, for tonic and grpcurl.
    pub cert_pem: String,
    pub key_pem: String,
    /// The URI SAN in the certificate.
    pub uri: String,
}

/// A CA with Envoy's server certificate written to a folder in the file
/// names deploy/envoy/envoy.yaml expects (`ca.pem`, `server.pem`,
/// `server-key.pem`), and the means to issue client certificates.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_der: Vec<u8>,
}

impl TestPki {
    /// Makes a CA and a server certificate for `localhost`/127.0.0.1.
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("cedar-ext-authz test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut ca_params);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
        let pki = Self {
            dir,
            ca_der: ca_cert.der().to_vec(),
            ca_params,
            ca_key,
        };

        let server_key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params.distinguished_name = name("envoy");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params);
        let cert = params
            .signed_by(&server_key, &pki.issuer())
            .expect("server certificate");
        std::fs::write(pki.dir.path().join("server.pem"), cert.pem()).expect("write server.pem");
        std::fs::write(
            pki.dir.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .expect("write server-key.pem");
        pki
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.ca_params, &self.ca_key)
    }

    /// The folder with `ca.pem`, `server.pem` and `server-key.pem`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the CA certificate (PEM).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate, DER, for a client's root store.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// Issues a client certificate whose only SAN is the URI `uri`.
    pub fn client(&self, uri: &str) -> ClientIdentity {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::default();
        params.distinguished_name = name("test client");
        params.subject_alt_names = vec![SanType::URI(
            uri.to_owned().try_into().expect("URI SAN is IA5"),
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer())
            .expect("client certificate");
        ClientIdentity {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            uri: uri.to_owned(),
        }
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from yesterday for two days: within every verifier's limits.
fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(2);
}
