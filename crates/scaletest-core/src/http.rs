//! A minimal HTTP/1.0 client for loopback endpoints (Prometheus' API and the
//! components' /metrics): one request per connection, no TLS, bounded time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}{path} did not answer within {timeout:?}")]
    Timeout { addr: String, path: String, timeout: Duration },
    #[error("{addr}{path} answered {status}: {body}")]
    Status { addr: String, path: String, status: u16, body: String },
    #[error("malformed HTTP response from {addr}")]
    Malformed { addr: String },
}

const TIMEOUT: Duration = Duration::from_secs(30);

async fn request(method: &str, addr: &str, path: &str) -> Result<String, HttpError> {
    let work = async {
        let mut s =
            TcpStream::connect(addr).await.map_err(|source| HttpError::Connect { addr: addr.into(), source })?;
        let req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|source| HttpError::Connect { addr: addr.into(), source })?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.map_err(|source| HttpError::Connect { addr: addr.into(), source })?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or(HttpError::Malformed { addr: addr.into() })?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(HttpError::Malformed { addr: addr.into() })?;
        if !(200..300).contains(&status) {
            let body = body.chars().take(300).collect();
            return Err(HttpError::Status { addr: addr.into(), path: path.into(), status, body });
        }
        Ok(body.to_string())
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(HttpError::Timeout { addr: addr.into(), path: path.into(), timeout: TIMEOUT }))
}

pub async fn get(addr: &str, path: &str) -> Result<String, HttpError> {
    request("GET", addr, path).await
}

pub async fn post(addr: &str, path: &str) -> Result<String, HttpError> {
    request("POST", addr, path).await
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an unlabelled sample (`name value`) in Prometheus text format.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_promql() {
        assert_eq!(encode("sum(rate(x[5m])) by (le)"), "sum%28rate%28x%5B5m%5D%29%29%20by%20%28le%29");
    }

    #[test]
    fn reads_unlabelled_samples_only() {
        let text = "# HELP a_total x\na_total 3\na_total_created 1.7e9\nb{x=\"1\"} 2\nb 5\n";
        assert_eq!(sample(text, "a_total"), Some(3.0));
        assert_eq!(sample(text, "b"), Some(5.0));
        assert_eq!(sample(text, "c"), None);
    }
}
