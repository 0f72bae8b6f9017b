//! kube client setup from a kubeconfig file (every component is handed the
//! admin kubeconfig its simulated cluster's supervisor wrote).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path} is not usable")]
    Config {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client for kubeconfig {path}")]
    Client {
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
}

pub async fn config_from_kubeconfig(path: &Path) -> Result<Config, ClientError> {
    let kubeconfig =
        Kubeconfig::read_from(path).map_err(|source| ClientError::Read { path: path.to_owned(), source })?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Config { path: path.to_owned(), source })?;
    // Watches are long; plain requests against a loopback apiserver are not.
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(295));
    Ok(config)
}

pub async fn from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    let config = config_from_kubeconfig(path).await?;
    Client::try_from(config).map_err(|source| ClientError::Client { path: path.to_owned(), source })
}
