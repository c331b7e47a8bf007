//! Engine reachability: a periodic ping whose result the node publishes
//! (`runtime_healthy`), so placement skips a node whose engine is down and
//! takes it back when the engine returns.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::vocabulary::RuntimeHealth;

/// Longest a ping may take before the engine counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) async fn health_loop(inner: Arc<Inner>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        inner.check_health().await;
    }
}

impl Inner {
    /// Pings the engine and records the result. After an outage (or at the
    /// first contact) the API version is negotiated again, so an older engine
    /// such as Docker 20.10 (API 1.41) is spoken to in its own version.
    pub(crate) async fn check_health(&self) -> RuntimeHealth {
        let was_healthy = self.health.borrow().is_healthy();
        let result = tokio::time::timeout(PING_TIMEOUT, async {
            let docker = self
                .docker()
                .map_err(|e| super::error_for(&self.host, "accept a connection", e))?;
            if !was_healthy {
                docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map(|_| ())
                    .map_err(|e| super::error_for(&self.host, "negotiate the API version", e))?;
            }
            docker
                .ping()
                .await
                .map(|_| ())
                .map_err(|e| super::error_for(&self.host, "answer a ping", e))
        })
        .await;
        let health = match result {
            Ok(Ok(())) => RuntimeHealth::Healthy,
            Ok(Err(e)) => RuntimeHealth::Unhealthy(e.to_string()),
            Err(_) => RuntimeHealth::Unhealthy(
                super::RuntimeError::Unreachable {
                    host: self.host.clone(),
                    message: format!("no answer to a ping within {PING_TIMEOUT:?}"),
                }
                .to_string(),
            ),
        };
        if health.is_healthy() != was_healthy {
            match &health {
                RuntimeHealth::Healthy => {
                    tracing::info!(host = %self.host, "Docker engine reachable")
                }
                RuntimeHealth::Unhealthy(msg) => {
                    tracing::warn!(host = %self.host, %msg, "Docker engine unhealthy")
                }
            }
        }
        self.health.send_if_modified(|current| {
            if *current == health {
                false
            } else {
                *current = health.clone();
                true
            }
        });
        health
    }
}
