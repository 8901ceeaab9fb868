//! A self-signed certificate and rustls configs for both ends, for the
//! tests that send real TLS through the proxy (SNI routing).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A server config holding one self-signed certificate and a client
/// config that trusts it.
pub(crate) struct Tls {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
}

/// One self-signed certificate for `names`, and configs for both ends.
pub(crate) fn tls(names: &[&str]) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}
