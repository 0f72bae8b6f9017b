//! Logging setup shared by every binary: `RUST_LOG` wins, `info` otherwise.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).try_init();
}

/// kube-client logs every failed request at ERROR (and every insecure client
/// at WARN) before returning the error to us; callers report errors themselves,
/// and readiness probes fail on purpose while a component starts.
const DEFAULT_FILTER: &str = "info,kube_client::client::builder=off,kube_client::client::tls=error";
