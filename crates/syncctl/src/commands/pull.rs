//! `syncctl pull`: messages of a subscription, shown, then acknowledged or
//! released; and the pulling `dlq` shares.

use super::clients::{puller, Global};
use super::Format;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use sync_pubsub::{PubSubPuller, ReceivedMessage};

/// Arguments of `pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Subscription id or path.
    #[arg(long)]
    pub subscription: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 10)]
    pub max: usize,
    /// Stop waiting for more messages after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub wait_secs: u64,
    /// Acknowledge what was pulled (otherwise it is released for redelivery).
    #[arg(long)]
    pub ack: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Connects, then pulls from `subscription` until `max` distinct messages or
/// nothing more arrives within `wait_secs`. The puller is returned to ack or
/// release them.
pub async fn pull_some(
    g: &Global,
    subscription: &str,
    max: usize,
    wait_secs: u64,
) -> Result<(PubSubPuller, Vec<ReceivedMessage>)> {
    let puller = puller(g).await?;
    let wait = Duration::from_secs(wait_secs);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while out.len() < max {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let batch = puller
            .pull(
                subscription,
                i32::try_from(max - out.len()).unwrap_or(i32::MAX).min(1000),
                remaining.min(Duration::from_secs(2)),
            )
            .await
            .with_context(|| format!("pulling from {subscription}"))?;
        if batch.is_empty() && !out.is_empty() {
            break;
        }
        for m in batch {
            if seen.insert(m.message_id.clone()) {
                out.push(m);
            } else {
                // Redelivered while we held it: release the extra lease.
                puller
                    .nack(subscription, std::slice::from_ref(&m.ack_id))
                    .await
                    .ok();
            }
        }
    }
    Ok((puller, out))
}

fn show_message(m: &ReceivedMessage) -> Value {
    let data = String::from_utf8_lossy(&m.data);
    let data: Value =
        serde_json::from_str(&data).unwrap_or_else(|_| Value::String(data.into_owned()));
    json!({"message_id": m.message_id, "publish_time": m.publish_time.map(|t| t.to_rfc3339()), "ordering_key": m.ordering_key, "attributes": m.attributes, "data": data})
}

pub fn print_messages(ms: &[ReceivedMessage], format: Format) -> Result<()> {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&ms.iter().map(show_message).collect::<Vec<_>>())?
        ),
        Format::Table => {
            for m in ms {
                let v = show_message(m);
                println!("  message {}  attributes {}", m.message_id, v["attributes"]);
                println!("    {}", v["data"]);
            }
        }
    }
    Ok(())
}

pub async fn run(g: &Global, a: PullArgs) -> Result<()> {
    let (puller, ms) = pull_some(g, &a.subscription, a.max, a.wait_secs).await?;
    if a.format == Format::Table {
        println!("{} messages from {}:", ms.len(), a.subscription);
    }
    print_messages(&ms, a.format)?;
    let ids: Vec<String> = ms.iter().map(|m| m.ack_id.clone()).collect();
    if a.ack {
        puller
            .ack(&a.subscription, &ids)
            .await
            .context("acknowledging")?;
    } else {
        puller
            .nack(&a.subscription, &ids)
            .await
            .context("releasing")?;
    }
    Ok(())
}
