//! `syncctl load`: a bulk generator of recipe-shaped events.
//!
//! Events get strictly increasing timestamps in generation order (starting an
//! hour in the past, one millisecond apart), so the expected final state is
//! well defined; `--shuffle` publishes them in random order and `--duplicates`
//! publishes a share of them twice, which is what the sync function must
//! survive. `--record` writes every published message (id and data) so a test
//! can compute the expected state with the core's merge.

use super::clients::{publisher, Global};
use super::publish::naive_iso;
use anyhow::{bail, Context, Result};
use chrono::{Duration as ChronoDuration, Utc};
use clap::Args;
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sync_core::wire::EventMessage;
use sync_core::{EventPublisher, Operation, OutgoingMessage};

/// Arguments of `load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Topic id or path.
    #[arg(long, default_value = sync_core::wire::topology::EVENTS_TOPIC)]
    pub topic: String,
    /// Number of distinct events.
    #[arg(long)]
    pub events: usize,
    /// Number of entities they spread over.
    #[arg(long)]
    pub entities: usize,
    /// Fraction of events published a second time (0.0-1.0).
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Publish in random order (timestamps still follow generation order).
    #[arg(long)]
    pub shuffle: bool,
    /// Messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Share of deletes among events (0.0-1.0).
    #[arg(long, default_value_t = 0.05)]
    pub deletes: f64,
    /// Approximate size of each event's data, in bytes.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Publishes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Random seed (reproducible runs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix of entity ids.
    #[arg(long, default_value = "load")]
    pub entity_prefix: String,
    /// Write every published message (message id, data) as JSON lines here.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Generates the events of a load run, in generation (timestamp) order.
pub fn generate(a: &LoadArgs) -> Vec<EventMessage> {
    let mut rng = StdRng::seed_from_u64(a.seed);
    let start = Utc::now() - ChronoDuration::hours(1);
    let statuses = ["active", "inactive", "pending", "archived"];
    (0..a.events)
        .map(|i| {
            let entity = rng.random_range(0..a.entities.max(1));
            let ts = start + ChronoDuration::milliseconds(i64::try_from(i).unwrap_or(i64::MAX));
            let delete = rng.random_bool(a.deletes.clamp(0.0, 1.0));
            let operation = if delete {
                Operation::Delete
            } else if i % 7 == 0 {
                Operation::Create
            } else {
                Operation::Update
            };
            let mut event = EventMessage::new(
                format!("{}-{entity:05}", a.entity_prefix),
                operation,
                naive_iso(ts),
            )
            .source(format!("loadgen-{}", rng.random_range(0..3)))
            .correlation_id(format!("load-{}-{i}", a.seed));
            if !delete {
                if rng.random_bool(0.5) {
                    event = event.field("name", format!("Item {entity} v{i}"));
                }
                if rng.random_bool(0.5) {
                    event = event.field("status", statuses[rng.random_range(0..statuses.len())]);
                }
                event = event.field("counter", i);
                if a.payload_bytes > 0 {
                    event = event.field("description", "x".repeat(a.payload_bytes));
                }
            }
            event
        })
        .collect()
}

pub async fn run(g: &Global, a: LoadArgs) -> Result<()> {
    if a.events == 0 || a.entities == 0 {
        bail!("--events and --entities must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.duplicates) {
        bail!("--duplicates must be between 0 and 1");
    }
    let events = generate(&a);
    let mut rng = StdRng::seed_from_u64(a.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..events.len()).collect();
    let extra = (a.duplicates * events.len() as f64).round() as usize;
    let mut dups: Vec<usize> = (0..events.len()).collect();
    dups.shuffle(&mut rng);
    order.extend(dups.into_iter().take(extra));
    if a.shuffle {
        order.shuffle(&mut rng);
    }

    let publisher = publisher(g).await?;
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(order.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let rate = a.rate;
    let topic = a.topic.clone();
    let results: Vec<Result<(String, &EventMessage)>> = stream::iter(order.iter().enumerate())
        .map(|(n, &i)| {
            let publisher = &publisher;
            let topic = &topic;
            let event = &events[i];
            let bar = &bar;
            async move {
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let message = OutgoingMessage {
                    data: event.to_bytes(),
                    attributes: Default::default(),
                    ordering_key: None,
                };
                let id = publisher
                    .publish(topic, message)
                    .await
                    .with_context(|| format!("publishing to {topic}"))?;
                bar.inc(1);
                Ok((id, event))
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    publisher.flush().await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let mut record = match &a.record {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut failures = 0usize;
    for r in &results {
        match r {
            Ok((id, event)) => {
                if let Some(w) = record.as_mut() {
                    writeln!(w, "{}", json!({"message_id": id, "data": event}))
                        .context("writing the record")?;
                }
            }
            Err(e) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("{e:#}");
                }
            }
        }
    }
    if let Some(mut w) = record {
        w.flush().context("writing the record")?;
    }
    let sent = results.len() - failures;
    println!(
        "published {sent} messages ({} events, {extra} duplicates) over {} entities in {:.2} s ({:.0} msg/s)",
        events.len(),
        a.entities,
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if failures > 0 {
        bail!("{failures} publishes failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn load_args(extra: &[&str]) -> LoadArgs {
        let mut argv = vec!["load", "--events", "200", "--entities", "7"];
        argv.extend_from_slice(extra);
        Wrap::parse_from(argv).load
    }

    #[test]
    fn generation_is_reproducible_valid_and_in_timestamp_order() {
        let a = load_args(&["--seed", "3"]);
        let first = generate(&a);
        let again = generate(&a);
        assert_eq!(first.len(), 200);
        // Same seed, same events except the wall-clock base of the timestamps.
        let strip = |v: &Vec<EventMessage>| {
            v.iter()
                .map(|e| (e.entity_id.clone(), e.operation, e.data.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&first), strip(&again));
        let now = Utc::now();
        let mut last = None;
        for (i, e) in first.iter().enumerate() {
            let parsed = sync_core::parse_event(
                &e.to_bytes(),
                &i.to_string(),
                &sync_core::ValidationLimits::default(),
                now,
            )
            .expect("generated events are valid");
            assert!(last.is_none_or(|t| parsed.timestamp > t));
            last = Some(parsed.timestamp);
        }
        let entities: std::collections::HashSet<_> =
            first.iter().map(|e| e.entity_id.clone()).collect();
        assert!(entities.len() <= 7);
    }

    #[test]
    fn payload_size_is_honoured() {
        let a = load_args(&["--payload-bytes", "1024", "--deletes", "0"]);
        let events = generate(&a);
        assert!(events.iter().all(|e| e
            .data
            .as_ref()
            .and_then(|d| d.get("description"))
            .and_then(serde_json::Value::as_str)
            .map(str::len)
            == Some(1024)));
    }
}
