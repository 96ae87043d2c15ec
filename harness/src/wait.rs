//! Readiness as a condition awaited against a deadline — the one place the harness waits.
//!
//! Every wait in etcd-harness goes through [`poll_until`]: it probes, sleeps a short interval between
//! probes, and on timeout reports what was awaited and what the last probe saw. It deliberately does
//! not retry errors of its own: a probe decides whether a failure means "not yet" or "never".

use std::future::Future;
use std::time::{Duration, Instant};

/// What one probe concluded.
pub enum Probe<T> {
    /// The condition holds; the wait ends with this value.
    Ready(T),
    /// Not yet; the string says what was seen (it ends up in the timeout's message).
    Pending(String),
}

/// A wait that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {:.1}s waiting for {what}; last seen: {last_seen}", .waited.as_secs_f64())]
pub struct Timeout {
    /// What was awaited, as a phrase ("systemd to report running").
    pub what: String,
    /// How long the wait lasted.
    pub waited: Duration,
    /// The last probe's observation.
    pub last_seen: String,
}

/// Probes `probe` every `interval` until it is ready, it fails, or `deadline` passes.
///
/// The probe's own errors end the wait at once; only [`Probe::Pending`] is retried.
pub async fn poll_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<Result<T, Timeout>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Probe<T>, E>>,
{
    let start = Instant::now();
    loop {
        let last_seen = match probe().await? {
            Probe::Ready(value) => return Ok(Ok(value)),
            Probe::Pending(seen) => seen,
        };
        if start.elapsed() + interval > timeout {
            return Ok(Err(Timeout {
                what: what.to_owned(),
                waited: start.elapsed(),
                last_seen,
            }));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[tokio::test]
    async fn ready_on_the_third_probe_returns_its_value() {
        let mut n = 0;
        let got = poll_until(
            "three probes",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                let seen = n;
                async move {
                    Ok::<_, Infallible>(if seen == 3 {
                        Probe::Ready(seen)
                    } else {
                        Probe::Pending(format!("probe {seen}"))
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(got.unwrap(), 3);
    }

    #[tokio::test]
    async fn timeout_names_what_was_awaited_and_the_last_observation() {
        let got = poll_until(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || async { Ok::<Probe<()>, Infallible>(Probe::Pending("still no".into())) },
        )
        .await
        .unwrap();
        let message = got.unwrap_err().to_string();
        assert!(message.contains("waiting for the impossible"), "{message}");
        assert!(message.contains("last seen: still no"), "{message}");
    }
}
