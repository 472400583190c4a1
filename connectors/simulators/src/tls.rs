//! Optional HTTPS for both simulators' accept loops: a throw-away certificate
//! authority and a `localhost`/`127.0.0.1`/`::1` server certificate generated at
//! start-up (rcgen), served with tokio-rustls on the ring provider, and a stream type
//! that is either the plain TCP stream or its TLS wrapper, so each accept loop keeps
//! one code path (and its connection-reset fault) for both.
//!
//! Why a CA plus a leaf rather than one self-signed certificate: webpki (rustls,
//! reqwest) refuses a CA certificate used as the server's own, and OpenSSL in strict
//! mode (Python 3.13+) refuses a leaf used as a trust anchor. A two-link chain
//! satisfies both, and clients trust [`SimTls::ca_pem`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// Names the server certificate is valid for (every way a test reaches loopback).
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A client that connects and never finishes its handshake must not pin a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A simulator's TLS identity: the acceptor and the CA certificate clients trust.
#[derive(Clone)]
pub(crate) struct SimTls {
    acceptor: TlsAcceptor,
    ca_pem: Arc<str>,
}

impl SimTls {
    /// Generates a fresh CA and server certificate (ECDSA P-256) and the rustls config.
    pub(crate) fn generate() -> io::Result<SimTls> {
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "leadroute simulator CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error)?;
        let ca = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(cert_error)?;
        let names: Vec<String> = SERVER_NAMES.iter().map(|name| (*name).to_owned()).collect();
        let mut server_params = CertificateParams::new(names).map_err(cert_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .map_err(cert_error)?;

        let chain = vec![
            server_cert.der().clone(),
            CertificateDer::from(ca_cert.der().to_vec()),
        ];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_error)?;
        // Both accept loops speak HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(SimTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: Arc::from(ca_cert.pem()),
        })
    }

    /// PEM of the CA that signed the server certificate.
    pub(crate) fn ca_pem(&self) -> String {
        self.ca_pem.to_string()
    }

    /// Runs the server handshake on an accepted connection.
    pub(crate) async fn accept<S>(&self, stream: S) -> io::Result<MaybeTls<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Ok(MaybeTls::Tls(Box::new(tls))),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake did not finish in time",
            )),
        }
    }
}

/// Wraps `stream` in TLS when `tls` is set, else passes it through.
pub(crate) async fn wrap<S>(tls: Option<&SimTls>, stream: S) -> io::Result<MaybeTls<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tls {
        Some(tls) => tls.accept(stream).await,
        None => Ok(MaybeTls::Plain(stream)),
    }
}

/// `http://` or `https://` base URL for a bound address.
pub(crate) fn base_url(tls: Option<&SimTls>, addr: std::net::SocketAddr) -> String {
    let scheme = if tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

fn cert_error(error: rcgen::Error) -> io::Error {
    io::Error::other(format!(
        "simulator TLS: could not generate the self-signed certificate: {error}"
    ))
}

fn tls_error(error: tokio_rustls::rustls::Error) -> io::Error {
    io::Error::other(format!(
        "simulator TLS: rustls rejected the generated certificate: {error}"
    ))
}

/// A connection as served: plain, or TLS over the same stream. Dropping a `Tls`
/// drops the inner stream without `close_notify`, so a reset fault still looks like
/// a torn connection to the client.
pub(crate) enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_flush(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(stream) => stream.is_write_vectored(),
            MaybeTls::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_ca_is_a_pem_certificate() {
        let tls = SimTls::generate().expect("certificate generation works offline");
        let pem = tls.ca_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
}
