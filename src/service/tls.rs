//! TLS for both listeners (SPEC §12): one rustls configuration made from
//! `[tls]`, so that the gRPC port and the HTTP endpoint present the same
//! certificate and ask for the same client certificates, and a bad file
//! reads the same on both. TLS 1.3 (RFC 8446) and 1.2 (RFC 5246), ring.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::{ClientAuth, TlsConfig};
use crate::limits::{Accept, Guarded};
use crate::Error;

/// A client that connects but does not finish its handshake in this time is
/// dropped, so that idle sockets cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN (RFC 7301) of each listener: gRPC needs HTTP/2, the RFC 3161, CRL
/// and OCSP endpoint speaks HTTP/1.1.
pub const ALPN_GRPC: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The server side of `[tls]`, loaded and checked once.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Reads the certificate chain, the key and the client CAs. Refuses a
    /// key that does not belong to the certificate (rustls
    /// `InconsistentKeys`) and a client CA file without a usable CA.
    pub fn load(tls: &TlsConfig) -> Result<Self, Error> {
        let provider = Arc::new(ring::default_provider());
        let chain = certificates(&tls.certificate, "[tls] certificate")?;
        let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
            invalid(format!(
                "[tls] key {}: cannot read a PEM private key (PKCS#8, SEC1 or PKCS#1) from it",
                tls.key.display()
            ))
            .with_source(e)
        })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal("TLS protocol versions").with_source(e))?;
        let builder = match &tls.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                builder.with_client_cert_verifier(client_verifier(ca, tls.client_auth, provider)?)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            invalid(format!(
                "[tls] key {} does not fit certificate {}",
                tls.key.display(),
                tls.certificate.display()
            ))
            .with_source(e)
        })?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// An acceptor that offers `alpn` (RFC 7301 §3.2: the server picks).
    pub fn acceptor(&self, alpn: &[u8]) -> Acceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Acceptor(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

/// Runs the server handshake of one connection.
#[derive(Clone)]
pub struct Acceptor(tokio_rustls::TlsAcceptor);

impl Acceptor {
    /// The handshake, bounded by [`HANDSHAKE_TIMEOUT`]. A client without an
    /// acceptable certificate, where one is required, fails here (RFC 8446
    /// §4.4.2.4: `certificate_required`; TLS 1.2: `handshake_failure`).
    pub async fn accept<IO>(&self, stream: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.0.accept(stream))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?
    }
}

/// Accepted connections after their handshake. Each handshake runs in its
/// own task, so a slow client does not hold up the others; failed ones are
/// logged and dropped. Ends when the stream is dropped.
pub fn incoming(
    mut accept: Accept,
    acceptor: Acceptor,
) -> impl tokio_stream::Stream<Item = std::io::Result<TlsStream<Guarded<TcpStream>>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // `Accept` applies the connection caps and backs off on errors.
            let (stream, peer) = tokio::select! {
                () = sender.closed() => return,
                accepted = accept.next() => accepted,
            };
            let (acceptor, sender) = (acceptor.clone(), sender.clone());
            tokio::spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let _ = sender.send(Ok(tls)).await;
                    }
                    Err(e) => tracing::info!(%peer, error = %e, "TLS handshake failed"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Client certificates must chain to a CA of `path` (RFC 5280 §6 path
/// validation by webpki); with `Optional`, a client may also send none.
fn client_verifier(
    path: &Path,
    auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn tokio_rustls::rustls::server::danger::ClientCertVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(path, "[tls] client_ca")? {
        roots.add(ca).map_err(|e| {
            invalid(format!(
                "[tls] client_ca {}: a certificate is not a usable CA",
                path.display()
            ))
            .with_source(e)
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    builder
        .build()
        .map_err(|e| invalid(format!("[tls] client_ca {}", path.display())).with_source(e))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |e: Option<tokio_rustls::rustls::pki_types::pem::Error>| {
        let error = invalid(format!(
            "{what} {}: cannot read PEM certificates from it",
            path.display()
        ));
        match e {
            Some(e) => error.with_source(e),
            None => error,
        }
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(Some(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(Some(e)))?;
    if certificates.is_empty() {
        return Err(bad(None));
    }
    Ok(certificates)
}

fn invalid(message: String) -> Error {
    Error::invalid_argument(message)
}
