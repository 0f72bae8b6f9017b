//! What every harness binary (node-creator, pod-shim, load-driver, the
//! reference system under test) does around its own logic: common flags,
//! logging, SIGTERM handling, a kube client, and the admin server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::ClientError;
use crate::metrics::{self, MetricsError, Readiness};

/// Flags shared by every harness component (`#[command(flatten)]` them).
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Kubeconfig of the simulated cluster to work on.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "SCALETEST_METRICS_ADDR", default_value = "127.0.0.1:0")]
    pub metrics_addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A started component: its client, its shutdown signal and its admin server.
pub struct ComponentRuntime {
    pub client: Client,
    /// Fires on SIGTERM / Ctrl-C.
    pub shutdown: CancellationToken,
    /// Set once caches are synced; `/readyz` answers 200 from then on.
    pub ready: Readiness,
    pub metrics_addr: SocketAddr,
    server: JoinHandle<Result<(), MetricsError>>,
    server_stop: CancellationToken,
}

impl ComponentRuntime {
    /// Logging, signals, the admin server for `registry`, and a client.
    pub async fn start(args: &CommonArgs, registry: Registry) -> Result<Self, ComponentError> {
        crate::telemetry::init();
        let shutdown = crate::shutdown::on_signals();
        let listener = metrics::bind(args.metrics_addr).await?;
        let metrics_addr = listener.local_addr().unwrap_or(args.metrics_addr);
        let client = crate::client::from_kubeconfig(&args.kubeconfig).await?;
        let ready = Readiness::default();
        let server_stop = CancellationToken::new();
        let server = tokio::spawn(metrics::serve(listener, Arc::new(registry), ready.clone(), server_stop.clone()));
        tracing::info!(%metrics_addr, "serving metrics");
        Ok(Self { client, shutdown, ready, metrics_addr, server, server_stop })
    }

    /// Stops the admin server (call after the component's work has drained).
    pub async fn finish(self) {
        self.server_stop.cancel();
        let _ = self.server.await;
    }
}

/// The end of every `main`: one line on stderr for an error, and the exit code.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
