//! Readiness probes: a TCP connect, or an HTTP(S) GET answered with 2xx.

use std::time::Duration;

use kube::{Client, Config};

use crate::components::Probe;

/// A probe that can be asked repeatedly (the HTTP client is built once).
pub struct Prober {
    probe: Probe,
    client: Option<(Client, String)>,
}

impl Prober {
    pub fn new(probe: Probe) -> Self {
        let client = match &probe {
            Probe::Tcp(_) | Probe::Started => None,
            Probe::Http(url) => http_client(url),
        };
        Self { probe, client }
    }

    pub async fn ready(&self) -> bool {
        match (&self.probe, &self.client) {
            (Probe::Tcp(port), _) => {
                tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(("127.0.0.1", *port)))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
            (Probe::Http(_), Some((client, path))) => {
                let req = http::Request::get(path.as_str()).body(Vec::new()).expect("static request");
                tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await.is_ok_and(|r| r.is_ok())
            }
            (Probe::Http(_), None) => false,
            (Probe::Started, _) => true,
        }
    }
}

/// Health endpoints of Kubernetes components are served on self-signed certs
/// and open to anonymous users; only reachability and the status matter here.
fn http_client(url: &str) -> Option<(Client, String)> {
    let uri: http::Uri = url.parse().ok()?;
    let path = uri.path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
    let base: http::Uri = format!("{}://{}", uri.scheme_str()?, uri.authority()?).parse().ok()?;
    let mut config = Config::new(base);
    config.accept_invalid_certs = true;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(5));
    Some((Client::try_from(config).ok()?, path))
}
