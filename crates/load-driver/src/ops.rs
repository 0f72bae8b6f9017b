//! Creating and deleting one object of the run: through the client-side rate limit,
//! retried with backoff a bounded number of times, counted, and logged by name.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client};
use tokio::time::Instant;

use crate::measure::Tracker;
use crate::metrics::{Metrics, Operation};
use crate::objects::{BuildError, Factory, ObjectKey};
use crate::ratelimit::TokenBucket;

/// Attempts per create or delete before giving up on it (the phase loops then retry
/// the object as a whole, so giving up is never final).
pub const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("cannot build {key}")]
    Build {
        key: ObjectKey,
        #[source]
        source: BuildError,
    },
    #[error("cannot create {key} (after {attempts} attempt(s))")]
    Create {
        key: ObjectKey,
        attempts: u32,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {key} (after {attempts} attempt(s))")]
    Delete {
        key: ObjectKey,
        attempts: u32,
        #[source]
        source: kube::Error,
    },
}

/// Whether another attempt may succeed: not for requests the apiserver will always
/// reject (bad object, no permission, no such kind or namespace).
pub fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => !matches!(status.code, 400 | 401 | 403 | 404 | 405 | 406 | 413 | 415 | 422),
        _ => true,
    }
}

fn has_code(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Exponential with jitter (so retries of a burst do not arrive together), capped.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
    exp.mul_f64(rand::random_range(0.5..=1.0))
}

/// Everything one request needs; shared by every in-flight task.
pub struct Ops {
    pub client: Client,
    pub resource: ApiResource,
    pub factory: Factory,
    pub limiter: Arc<TokenBucket>,
    /// Where create instants go, when the created objects are the measured ones.
    pub tracker: Option<Arc<Tracker>>,
    pub metrics: Metrics,
}

impl Ops {
    fn api(&self, key: &ObjectKey) -> Api<DynamicObject> {
        if key.namespace.is_empty() {
            Api::all_with(self.client.clone(), &self.resource)
        } else {
            Api::namespaced_with(self.client.clone(), &key.namespace, &self.resource)
        }
    }

    /// Creates object `index`. 409 AlreadyExists counts as created: a retry whose first
    /// attempt landed, or an object a previous driver instance made.
    pub async fn create(&self, index: u64) -> Result<(), OpError> {
        let key = self.factory.key(index);
        let obj = self.factory.build(index).map_err(|source| OpError::Build { key: key.clone(), source })?;
        let api = self.api(&key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            // The instant the request leaves: creationTimestamp has only 1 s resolution.
            if let Some(t) = &self.tracker {
                t.sent(key.clone(), Instant::now());
            }
            let error = match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {
                    self.metrics.created.inc();
                    return Ok(());
                }
                Err(e) if has_code(&e, 409) => {
                    if attempt == 1
                        && let Some(t) = &self.tracker
                    {
                        // Made before us: our instant says nothing about it.
                        t.forget(&key);
                    }
                    self.metrics.created.inc();
                    return Ok(());
                }
                Err(e) => e,
            };
            self.metrics.error(Operation::create);
            if attempt >= MAX_ATTEMPTS || !is_retryable(&error) {
                if let Some(t) = &self.tracker {
                    t.forget(&key);
                }
                tracing::error!(object = %key, attempt, %error, "create failed; giving up on this attempt series");
                return Err(OpError::Create { key, attempts: attempt, source: error });
            }
            tracing::warn!(object = %key, attempt, %error, "create failed; retrying");
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
    }

    /// Whether object `index` exists (one GET, through the rate limit).
    pub async fn exists(&self, index: u64) -> Result<bool, kube::Error> {
        let key = self.factory.key(index);
        self.limiter.acquire().await;
        Ok(self.api(&key).get_opt(&key.name).await?.is_some())
    }

    /// Deletes object `index`; 404 NotFound counts as deleted.
    pub async fn delete(&self, index: u64) -> Result<(), OpError> {
        let key = self.factory.key(index);
        let api = self.api(&key);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.limiter.acquire().await;
            let error = match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => break,
                Err(e) if has_code(&e, 404) => break,
                Err(e) => e,
            };
            self.metrics.error(Operation::delete);
            if attempt >= MAX_ATTEMPTS || !is_retryable(&error) {
                tracing::error!(object = %key, attempt, %error, "delete failed; giving up on this attempt series");
                return Err(OpError::Delete { key, attempts: attempt, source: error });
            }
            tracing::warn!(object = %key, attempt, %error, "delete failed; retrying");
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        if let Some(t) = &self.tracker {
            t.forget(&key);
        }
        self.metrics.deleted.inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, ..Default::default() }))
    }

    #[test]
    fn only_transient_errors_are_retried() {
        for code in [408, 409, 429, 500, 503, 504] {
            assert!(is_retryable(&api_error(code)), "{code}");
        }
        for code in [400, 403, 404, 422] {
            assert!(!is_retryable(&api_error(code)), "{code}");
        }
        assert!(has_code(&api_error(409), 409));
        assert!(!has_code(&api_error(500), 409));
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..40 {
            let exp = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
            let b = backoff(attempt);
            assert!(b >= exp / 2 && b <= exp, "attempt {attempt}: {b:?}");
        }
        assert!(backoff(30) <= BACKOFF_MAX);
    }
}
