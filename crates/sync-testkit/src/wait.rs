//! Waiting with deadlines instead of sleeps: [`poll_until`] for any condition
//! a test checks against the emulators, [`pull_until`] for messages on a pull
//! subscription, and [`drain`] for "nothing else arrived".
//!
//! A timeout is an error naming what was awaited and for how long.

use anyhow::{bail, Result};
use std::future::Future;
use std::time::{Duration, Instant};
use sync_pubsub::{PubSubPuller, ReceivedMessage};

/// How often [`poll_until`] checks.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Awaits `check` every 100 ms until it returns `Some`, for at most `deadline`.
///
/// # Errors
/// What `check` returns, or `timed out after … waiting for {what}` once the
/// deadline has passed.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Pulls (and acks) from `subscription` until at least `n` messages arrived,
/// for at most `deadline`; returns all of them (more than `n` if a batch
/// brought more).
///
/// # Errors
/// When pulling fails, or fewer than `n` arrived in time (the count is in
/// the message).
pub async fn pull_until(
    puller: &PubSubPuller,
    subscription: &str,
    n: usize,
    deadline: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let end = Instant::now() + deadline;
    let mut received = Vec::new();
    while received.len() < n {
        let remaining = end.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!(
                "timed out after {deadline:?} waiting for {n} messages on {subscription}: got {}",
                received.len()
            );
        }
        received.extend(
            pull_and_ack(
                puller,
                subscription,
                100,
                remaining.min(Duration::from_secs(1)),
            )
            .await?,
        );
    }
    Ok(received)
}

/// Pulls (and acks) for `quiet` and returns whatever arrived (for "nothing
/// else arrived" checks).
///
/// # Errors
/// When pulling fails.
pub async fn drain(
    puller: &PubSubPuller,
    subscription: &str,
    quiet: Duration,
) -> Result<Vec<ReceivedMessage>> {
    pull_and_ack(puller, subscription, 1000, quiet).await
}

/// One pull of up to `max` messages waiting up to `wait`, acked.
async fn pull_and_ack(
    puller: &PubSubPuller,
    subscription: &str,
    max: i32,
    wait: Duration,
) -> Result<Vec<ReceivedMessage>> {
    let batch = puller.pull(subscription, max, wait).await?;
    let ack_ids: Vec<String> = batch.iter().map(|m| m.ack_id.clone()).collect();
    if !ack_ids.is_empty() {
        puller.ack(subscription, &ack_ids).await?;
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_until_names_what_it_waited_for() {
        let r: Result<()> =
            poll_until(Duration::from_millis(50), "the never condition", || async {
                Ok(None)
            })
            .await;
        let err = r.expect_err("must time out").to_string();
        assert!(err.contains("the never condition"), "{err}");
    }

    #[tokio::test]
    async fn poll_until_returns_the_first_some() -> Result<()> {
        let mut calls = 0;
        let got = poll_until(Duration::from_secs(5), "three calls", || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await?;
        assert_eq!(got, 3);
        Ok(())
    }
}
