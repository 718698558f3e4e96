//! What the publisher's batching delay costs and saves (`sync-bench
//! batch-delay`): `N` announcements published by `C` concurrent tasks, each
//! standing for a sync request (a pause for its Datastore work, uniform in
//! 0..2×`WORK_MS`, then one publish it waits for), for each delay, with and
//! without ordering keys; prints a Markdown table of publish RPCs (counted on
//! the wire by [`crate::rpcproxy`]), messages per RPC, the p50/p99 latency of
//! one publish and the throughput.
//!
//! ```text
//! source scripts/lib/emulators.sh && pubsub_emulator_start batch-delay /tmp/logs
//! sync-bench batch-delay [--events N] [--concurrency 1,16,64] [--delays-ms 0,1,2,5,10]
//!                        [--work-ms 10] [--keys off,on]
//! ```
//!
//! Without the pause the tasks fall into lockstep (one RPC answers them all
//! and they publish again together), which flatters small delays. Needs
//! `PUBSUB_EMULATOR_HOST`. The emulator answers faster and with less jitter
//! than production Pub/Sub (no network, no replication before the ack), so
//! the latencies here are a floor; the RPC counts depend only on how
//! publishes arrive within the delay.

use crate::rpcproxy::{self, Counts};
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_core::{Announcement, EventPublisher, Operation};
use sync_pubsub::{messages, PubSubAdmin, PubSubConfig, PubSubPublisher};

const PROJECT: &str = "batch-delay";
/// Entities the announcements are spread over (ordering keys, when on).
const ENTITIES: usize = 200;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Announcements per run.
    pub events: usize,
    /// Concurrent tasks, one table row group each.
    pub concurrency: Vec<u64>,
    /// Batching delays, ms.
    pub delays_ms: Vec<u64>,
    /// Mean pause before each publish, ms.
    pub work_ms: u64,
    /// Ordering keys off and/or on.
    pub keys: Vec<bool>,
}

/// Runs the plan against the emulator at `PUBSUB_EMULATOR_HOST` and prints
/// the table.
///
/// # Errors
/// When the emulator is not set or not reachable, or a publish fails.
pub async fn run(plan: &Plan) -> Result<()> {
    let host = std::env::var(sync_config::PUBSUB_EMULATOR_HOST)
        .context("set PUBSUB_EMULATOR_HOST to a Pub/Sub emulator's host:port")?;
    let admin = PubSubAdmin::connect(&PubSubConfig::new(PROJECT).with_emulator(&host)).await?;
    let topic = format!("batch-delay-{}", std::process::id());
    admin.create_topic(&topic).await?;
    println!(
        "| keys | C | delay ms | publishes | RPCs | messages/RPC | p50 ms | p99 ms | publishes/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let total = plan.events;
    for &ordered in &plan.keys {
        for &c in &plan.concurrency {
            for &delay in &plan.delays_ms {
                let shape = Shape {
                    total,
                    concurrency: c,
                    work_ms: plan.work_ms,
                    ordered,
                };
                let run = measure(&host, &topic, &shape, delay).await?;
                println!(
                    "| {} | {c} | {delay} | {total} | {} | {:.1} | {:.1} | {:.1} | {:.0} |",
                    if ordered { "on" } else { "off" },
                    run.rpcs,
                    total as f64 / run.rpcs.max(1) as f64,
                    run.p50_ms,
                    run.p99_ms,
                    total as f64 / run.elapsed.as_secs_f64(),
                );
            }
        }
    }
    admin.delete_topic(&topic).await?;
    Ok(())
}

/// What one run publishes and how.
#[derive(Clone, Copy)]
struct Shape {
    total: usize,
    concurrency: u64,
    work_ms: u64,
    ordered: bool,
}

struct Run {
    rpcs: u64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed: Duration,
}

async fn measure(emulator: &str, topic: &str, shape: &Shape, delay_ms: u64) -> Result<Run> {
    let counts = Arc::new(Counts::default());
    let proxy =
        rpcproxy::start(0, emulator.to_string(), Arc::clone(&counts), Duration::ZERO).await?;
    let config = PubSubConfig::new(PROJECT)
        .with_emulator(proxy)
        .with_batch_delay(Duration::from_millis(delay_ms));
    let publisher = Arc::new(PubSubPublisher::connect(&config).await?);
    // Warm up the connection and the topic's publisher, then count afresh.
    let warm_up = Shape {
        total: shape.concurrency as usize,
        ..*shape
    };
    publish_all(&publisher, topic, warm_up).await?;
    counts.calls.store(0, Ordering::SeqCst);
    let start = Instant::now();
    let mut latencies = publish_all(&publisher, topic, *shape).await?;
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
        latencies[i - 1].as_secs_f64() * 1000.0
    };
    Ok(Run {
        rpcs: counts.calls.load(Ordering::SeqCst),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        elapsed,
    })
}

/// Publishes `shape.total` announcements from `shape.concurrency` tasks, each
/// pausing for its work, then waiting for its publish before the next;
/// returns every publish's latency.
async fn publish_all(
    publisher: &Arc<PubSubPublisher>,
    topic: &str,
    shape: Shape,
) -> Result<Vec<Duration>> {
    let Shape {
        total,
        work_ms,
        ordered,
        ..
    } = shape;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..shape.concurrency {
        let (publisher, next, topic) = (publisher.clone(), next.clone(), topic.to_string());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            // xorshift: a reproducible pause per task and message.
            let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (task + 1);
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                if i >= total {
                    return Ok::<_, sync_core::PublishError>(latencies);
                }
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pause_us = seed % (2 * work_ms * 1000 + 1);
                tokio::time::sleep(Duration::from_micros(pause_us)).await;
                let entity = format!("entity-{:04}", i % ENTITIES);
                let a = Announcement {
                    operation: Operation::Update,
                    version: (i / ENTITIES + 1) as i64,
                    data: serde_json::Map::from_iter([("n".to_string(), i.into())]),
                    last_modified: None,
                    correlation_id: Some(format!("c-{i}")),
                };
                let message = messages::announcement("SyncEntity", &entity, &a, ordered);
                let start = Instant::now();
                publisher.publish(&topic, message).await?;
                latencies.push(start.elapsed());
            }
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}
