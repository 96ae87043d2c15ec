//! Readiness as a condition awaited against a deadline — the one place the harness waits.
//!
//! Every wait in etcd-harness goes through [`poll_until`]: it probes, sleeps a short interval between
//! probes, and on timeout reports what was awaited and what the last probe saw. It deliberately does
//! not retry errors of its own: a probe decides whether a failure means "not yet" or "never".

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that stretches every deadline of the harness on a slow host.
pub const TIME_SCALE_VAR: &str = "ETCD_HARNESS_TIME_SCALE";

/// `ETCD_HARNESS_TIME_SCALE` that is not a number from 1 to 100.
#[derive(Debug, thiserror::Error)]
#[error("{TIME_SCALE_VAR}={value:?} is not a factor from 1 to 100 (every deadline is multiplied by it; set it to e.g. 4 on an emulated or heavily loaded host, or unset it)")]
pub struct BadTimeScale {
    value: String,
}

/// The factor in `value` (unset is 1).
pub fn parse_time_scale(value: Option<&str>) -> Result<f64, BadTimeScale> {
    let Some(value) = value else { return Ok(1.0) };
    match value.trim().parse::<f64>() {
        Ok(f) if (1.0..=100.0).contains(&f) => Ok(f),
        _ => Err(BadTimeScale {
            value: value.to_owned(),
        }),
    }
}

/// The factor [`TIME_SCALE_VAR`] gives, read once; the CLI refuses a bad one up front
/// ([`check_time_scale`]), so here a bad one counts as 1.
fn time_scale() -> f64 {
    static SCALE: OnceLock<f64> = OnceLock::new();
    *SCALE.get_or_init(|| {
        parse_time_scale(std::env::var(TIME_SCALE_VAR).ok().as_deref()).unwrap_or(1.0)
    })
}

/// Refuses a [`TIME_SCALE_VAR`] that is not a factor, naming it and the remedy.
pub fn check_time_scale() -> Result<(), BadTimeScale> {
    parse_time_scale(std::env::var(TIME_SCALE_VAR).ok().as_deref()).map(|_| ())
}

/// `limit` stretched by [`TIME_SCALE_VAR`]: a limit measured on a native host, made to hold where
/// everything runs N times slower (qemu's software emulation is 8-20x).
pub fn scaled(limit: Duration) -> Duration {
    limit.mul_f64(time_scale())
}

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

/// Probes `probe` every `interval` until it is ready, it fails, or `timeout` (stretched by
/// [`scaled`]) passes.
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
    let timeout = scaled(timeout);
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

    #[test]
    fn a_time_scale_is_a_factor_from_1_to_100_and_unset_is_1() {
        assert_eq!(parse_time_scale(None).unwrap(), 1.0);
        assert_eq!(parse_time_scale(Some("4")).unwrap(), 4.0);
        assert_eq!(parse_time_scale(Some(" 2.5 ")).unwrap(), 2.5);
        for bad in ["0.5", "0", "-3", "fast", "", "1000", "NaN"] {
            let e = parse_time_scale(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(TIME_SCALE_VAR) && e.contains(bad), "{bad}: {e}");
        }
    }
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
