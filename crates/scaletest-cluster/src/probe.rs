//! Readiness probes: a TCP connect, or an HTTP(S) GET answered with 2xx.
//!
//! An https probe trusts the cluster's own CA file, never the system's trust
//! store: the combined image need not carry a CA bundle, and without explicit
//! roots kube-client's rustls config falls back to the platform verifier, which
//! fails before any request is sent ("No CA certificates were loaded from the
//! system"). Every failure is kept (and logged when it changes), so a probe
//! that never succeeds says why.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::{Client, Config};
use thiserror::Error;

use crate::components::Probe;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("invalid probe URL {url:?}")]
    Url { url: String },
    #[error("cannot read the probe's CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no PEM certificate in the probe's CA file {path}")]
    NoCertificate { path: PathBuf },
    #[error("cannot build the probe's HTTP client")]
    Client(#[source] kube::Error),
}

/// A probe that can be asked repeatedly (the HTTP client is built once).
pub struct Prober {
    probe: Probe,
    /// The HTTP(S) client and path (`None` for TCP and started probes), or why it
    /// could not be built.
    client: Option<Result<(Client, String), String>>,
    last_error: Mutex<Option<String>>,
}

impl Prober {
    pub fn new(probe: Probe) -> Self {
        let client = match &probe {
            Probe::Tcp(_) | Probe::Started => None,
            Probe::Http(url) => Some(http_client(url, None, false)),
            Probe::Https { url, ca_file, verify } => Some(http_client(url, Some(ca_file), *verify)),
        }
        .map(|r| r.map_err(|e| error_chain(&e)));
        let error = client.as_ref().and_then(|c| c.as_ref().err()).cloned();
        if let Some(e) = &error {
            tracing::warn!(probe = ?probe, error = %e, "readiness probe cannot be built; it will never succeed");
        }
        Self { probe, client, last_error: Mutex::new(error) }
    }

    pub async fn ready(&self) -> bool {
        let outcome: Result<(), String> = match (&self.probe, &self.client) {
            (Probe::Tcp(port), _) => {
                match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(("127.0.0.1", *port)))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("connect 127.0.0.1:{port}: {e}")),
                    Err(_) => Err(format!("connect 127.0.0.1:{port}: timed out")),
                }
            }
            (Probe::Started, _) => Ok(()),
            (_, Some(Ok((client, path)))) => {
                let req = http::Request::get(path.as_str()).body(Vec::new()).expect("static request");
                match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(error_chain(&e)),
                    Err(_) => Err("timed out after 5s".into()),
                }
            }
            (_, Some(Err(e))) => Err(e.clone()),
            (_, None) => Err("no client".into()),
        };
        self.record(outcome.as_ref().err());
        outcome.is_ok()
    }

    /// Why the last attempt failed (`None` after a success or before any attempt).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("probe error lock").clone()
    }

    fn record(&self, error: Option<&String>) {
        let mut last = self.last_error.lock().expect("probe error lock");
        if let Some(e) = error
            && last.as_ref() != Some(e)
        {
            tracing::debug!(probe = ?self.probe, error = %e, "not ready");
        }
        *last = error.cloned();
    }
}

/// `e` with its sources, `: `-separated (kube's errors hide the TLS cause in them).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        source = cause.source();
    }
    s
}

/// The DER certificates of a PEM file.
fn read_ca(path: &Path) -> Result<Vec<Vec<u8>>, ProbeError> {
    let pem = std::fs::read(path).map_err(|source| ProbeError::CaFile { path: path.to_owned(), source })?;
    let certs: Vec<Vec<u8>> = rustls_pemfile_certs(&pem);
    if certs.is_empty() {
        return Err(ProbeError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).map(|c| c.to_vec()).collect()
}

/// An HTTP(S) client for the probe's base URL and the path to GET. With a CA
/// file it is the only root trusted; `verify: false` still accepts any serving
/// cert (kube-controller-manager and kube-scheduler serve self-signed ones).
fn http_client(url: &str, ca_file: Option<&Path>, verify: bool) -> Result<(Client, String), ProbeError> {
    let bad = || ProbeError::Url { url: url.to_owned() };
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
    let (scheme, authority) = (uri.scheme_str().ok_or_else(bad)?, uri.authority().ok_or_else(bad)?);
    let base: http::Uri = format!("{scheme}://{authority}").parse().map_err(|_| bad())?;
    let mut config = Config::new(base);
    config.root_cert = ca_file.map(read_ca).transpose()?;
    config.accept_invalid_certs = !verify;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    Ok((Client::try_from(config).map_err(ProbeError::Client)?, path))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    use super::*;

    /// An https server on loopback with the serving cert of `pki::ensure`, answering 200 to anything.
    async fn serve(pki: &crate::pki::Pki) -> u16 {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&pki.serving_cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(&pki.serving_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    fn https(port: u16, ca_file: PathBuf, verify: bool) -> Probe {
        Probe::Https { url: format!("https://127.0.0.1:{port}/readyz"), ca_file, verify }
    }

    #[tokio::test]
    async fn https_probe_trusts_the_cluster_ca_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::ensure(&dir.path().join("a"), "https://127.0.0.1:1", &[]).unwrap();
        let other = crate::pki::ensure(&dir.path().join("b"), "https://127.0.0.1:1", &[]).unwrap();
        let port = serve(&pki).await;

        let ok = Prober::new(https(port, pki.ca_cert.clone(), true));
        assert!(ok.ready().await, "probe failed: {:?}", ok.last_error());
        assert_eq!(ok.last_error(), None);

        // Signed by another CA: refused when verifying, and the reason is kept.
        let wrong = Prober::new(https(port, other.ca_cert.clone(), true));
        assert!(!wrong.ready().await);
        let e = wrong.last_error().expect("error kept");
        assert!(e.to_lowercase().contains("certificate"), "{e}");

        // Self-signed components (controller-manager, scheduler): any serving cert.
        let lax = Prober::new(https(port, other.ca_cert.clone(), false));
        assert!(lax.ready().await, "probe failed: {:?}", lax.last_error());
    }

    #[tokio::test]
    async fn unusable_ca_file_is_reported_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let p = Prober::new(https(1, missing.clone(), true));
        let e = p.last_error().expect("construction error kept");
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(!p.ready().await);
        assert!(p.last_error().is_some_and(|e| e.contains("missing.crt")));

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let p = Prober::new(https(1, empty, true));
        assert!(p.last_error().is_some_and(|e| e.contains("no PEM certificate")), "{:?}", p.last_error());
    }

    #[tokio::test]
    async fn closed_port_keeps_the_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let p = Prober::new(Probe::Tcp(port));
        assert!(!p.ready().await);
        assert!(p.last_error().is_some_and(|e| e.contains(&port.to_string())));
        assert!(Prober::new(Probe::Started).ready().await);
    }

    #[test]
    fn error_chain_joins_sources_once() {
        let inner = std::io::Error::other("inner cause");
        let outer = ProbeError::CaFile { path: "/x".into(), source: inner };
        assert_eq!(error_chain(&outer), "cannot read the probe's CA file /x: inner cause");
    }
}
