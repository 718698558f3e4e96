//! `syncctl dlq`: dead-lettered messages listed, or replayed to the main topic.

use super::clients::{publisher, Global};
use super::pull::{print_messages, pull_some};
use super::Format;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use sync_core::wire::dead_letter;
use sync_core::{EventPublisher, OutgoingMessage};
use sync_pubsub::ReceivedMessage;

/// Arguments of `dlq`.
#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

/// What to do with dead letters.
#[derive(Subcommand, Debug)]
pub enum DlqAction {
    /// Show dead-lettered messages with their reason (they stay in the subscription).
    List(DlqSelect),
    /// Republish selected messages to the main topic; each is acknowledged only
    /// after its republish succeeded, so a crash loses nothing.
    Replay(DlqReplay),
}

pub async fn run(g: &Global, a: DlqArgs) -> Result<()> {
    match a.action {
        DlqAction::List(s) => list(g, s).await,
        DlqAction::Replay(r) => replay(g, r).await,
    }
}

/// Which dead letters.
#[derive(Args, Debug)]
pub struct DlqSelect {
    /// The dead-letter subscription.
    #[arg(long, default_value = sync_core::wire::topology::DLQ_SUBSCRIPTION)]
    pub subscription: String,
    /// Only messages with this `error_code` attribute.
    #[arg(long)]
    pub error_code: Option<String>,
    /// At most this many messages.
    #[arg(long, default_value_t = 100)]
    pub max: usize,
    /// Stop waiting for more messages after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub wait_secs: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Arguments of `dlq replay`.
#[derive(Args, Debug)]
pub struct DlqReplay {
    #[command(flatten)]
    pub select: DlqSelect,
    /// Topic to republish to.
    #[arg(long, default_value = sync_core::wire::topology::EVENTS_TOPIC)]
    pub topic: String,
    /// Show what would be replayed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace the message data with this text before republishing (a fixed message).
    #[arg(long)]
    pub data: Option<String>,
}

fn matches(m: &ReceivedMessage, code: Option<&str>) -> bool {
    code.is_none_or(|c| {
        m.attributes
            .get(dead_letter::ERROR_CODE)
            .map(String::as_str)
            == Some(c)
    })
}

async fn list(g: &Global, s: DlqSelect) -> Result<()> {
    let (puller, all) = pull_some(g, &s.subscription, s.max, s.wait_secs).await?;
    let ack_ids: Vec<String> = all.iter().map(|m| m.ack_id.clone()).collect();
    let shown: Vec<ReceivedMessage> = all
        .into_iter()
        .filter(|m| matches(m, s.error_code.as_deref()))
        .collect();
    match s.format {
        Format::Json => print_messages(&shown, Format::Json)?,
        Format::Table => {
            println!(
                "{} dead-lettered messages in {}:",
                shown.len(),
                s.subscription
            );
            for m in &shown {
                let a = &m.attributes;
                println!(
                    "  {} (original {}): {} — {}",
                    m.message_id,
                    a.get(dead_letter::ORIGINAL_MESSAGE_ID)
                        .map_or("?", String::as_str),
                    a.get(dead_letter::ERROR_CODE).map_or("?", String::as_str),
                    a.get(dead_letter::ERROR_MESSAGE).map_or("", String::as_str)
                );
                println!(
                    "    data: {}",
                    String::from_utf8_lossy(&m.data)
                        .chars()
                        .take(200)
                        .collect::<String>()
                );
            }
        }
    }
    // Listing changes nothing: every message goes back at once.
    puller
        .nack(&s.subscription, &ack_ids)
        .await
        .context("releasing the listed messages")?;
    Ok(())
}

async fn replay(g: &Global, r: DlqReplay) -> Result<()> {
    // A dry run publishes nothing, so it needs no publisher.
    let publisher = if r.dry_run {
        None
    } else {
        Some(publisher(g).await?)
    };
    let s = &r.select;
    let (puller, all) = pull_some(g, &s.subscription, s.max, s.wait_secs).await?;
    let mut release = Vec::new();
    let (mut replayed, mut failed) = (0usize, 0usize);
    for m in all {
        let selected = matches(&m, s.error_code.as_deref());
        let Some(publisher) = publisher.as_ref().filter(|_| selected) else {
            if selected {
                println!(
                    "would replay {} ({}) to {}",
                    m.message_id,
                    m.attributes
                        .get(dead_letter::ERROR_CODE)
                        .map_or("?", String::as_str),
                    r.topic
                );
            }
            release.push(m.ack_id);
            continue;
        };
        let attributes = dead_letter::strip(&m.attributes);
        let message = OutgoingMessage {
            data: r.data.clone().map_or(m.data.clone(), String::into_bytes),
            attributes,
            ordering_key: None,
        };
        match publisher.publish(&r.topic, message).await {
            Ok(id) => {
                // Acknowledged only now: a crash before this line replays it again, never loses it.
                puller
                    .ack(&s.subscription, std::slice::from_ref(&m.ack_id))
                    .await
                    .context("acknowledging a replayed message")?;
                println!("replayed {} as {id} to {}", m.message_id, r.topic);
                replayed += 1;
            }
            Err(e) => {
                eprintln!("could not replay {}: {e}", m.message_id);
                release.push(m.ack_id);
                failed += 1;
            }
        }
    }
    if let Some(publisher) = &publisher {
        publisher.flush().await;
    }
    puller
        .nack(&s.subscription, &release)
        .await
        .context("releasing messages not replayed")?;
    println!(
        "{replayed} replayed, {failed} failed, {} left in {}",
        release.len(),
        s.subscription
    );
    if failed > 0 {
        bail!(
            "{failed} messages could not be replayed (they stay in {})",
            s.subscription
        );
    }
    Ok(())
}
