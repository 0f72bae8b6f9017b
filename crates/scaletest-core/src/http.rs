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
        let raw = read_response(&mut s).await.map_err(|source| HttpError::Connect { addr: addr.into(), source })?;
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

/// Reads one response: up to its Content-Length when it has one, else to the end.
/// Stopping at the length matters through `kubectl port-forward`, which passes the
/// server's close on about a second late (a kube run's ~30 verdict queries took 26 s).
async fn read_response(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
        if complete_length(&raw).is_some_and(|total| raw.len() >= total) {
            return Ok(raw);
        }
    }
}

/// The whole response's length in bytes, once its head is in and names a Content-Length.
fn complete_length(raw: &[u8]) -> Option<usize> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let len = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some(end + len)
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

    #[test]
    fn a_response_is_complete_at_its_content_length() {
        let head = "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(complete_length(head.as_bytes()), Some(head.len() + 4));
        assert_eq!(complete_length(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n"), None, "head not in yet");
        assert_eq!(complete_length(b"HTTP/1.0 200 OK\r\n\r\nbody"), None, "no length: read to the end");
    }

    /// A server that answers and then keeps the connection open (as a port-forward
    /// does for a while): the client returns at the Content-Length, not at a close.
    #[tokio::test]
    async fn returns_at_the_content_length_without_waiting_for_the_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
            let _ = held.await; // the connection stays open until the client has answered
        });
        assert_eq!(get(&addr, "/").await.unwrap(), "hello");
        let _ = release.send(());
        server.await.unwrap();
    }
}
