//! Measures what the publisher's batching delay costs and saves: `N`
//! announcements published by `C` concurrent tasks, each standing for a sync
//! request (a pause for its Datastore work, uniform in 0..2×`WORK_MS`, then
//! one publish it waits for), for each delay, with and without ordering keys;
//! reports publish RPCs (counted on the wire), messages per RPC, the p50/p99
//! latency of one publish and the throughput.
//!
//! ```text
//! source scripts/lib/emulators.sh && pubsub_emulator_start batch-delay /tmp/logs
//! cargo run -p sync-pubsub --example batch_delay -- [N] [C,C…] [DELAY_MS,…] [WORK_MS] [off,on]
//! ```
//!
//! Defaults: N = 2000, C = 1,16,64, delays 0,1,2,5,10 ms, 10 ms of work,
//! keys off then on. Without the pause the tasks fall into lockstep (one RPC
//! answers them all and they publish again together), which flatters small
//! delays. Needs
//! `PUBSUB_EMULATOR_HOST`. RPCs are counted by a loopback proxy between the
//! publisher and the emulator that reads the HTTP/2 frames the client sends
//! and counts HEADERS frames: one per gRPC call. The emulator answers faster
//! and with less jitter than production Pub/Sub (no network, no replication
//! before the ack), so the latencies here are a floor; the RPC counts depend
//! only on how publishes arrive within the delay.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_core::{Announcement, EventPublisher, Operation};
use sync_pubsub::{messages, PubSubAdmin, PubSubConfig, PubSubPublisher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const PROJECT: &str = "batch-delay";
/// Entities the announcements are spread over (ordering keys, when on).
const ENTITIES: usize = 200;
/// The HTTP/2 client connection preface, sent before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const HEADERS_FRAME: u8 = 0x1;

#[tokio::main]
async fn main() -> Result<()> {
    let host = std::env::var("PUBSUB_EMULATOR_HOST")
        .map_err(|_| "set PUBSUB_EMULATOR_HOST to a Pub/Sub emulator's host:port")?;
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let concurrency = list(args.next(), &[1, 16, 64])?;
    let delays = list(args.next(), &[0, 1, 2, 5, 10])?;
    let work_ms: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let keys = args.next().unwrap_or_else(|| "off,on".to_string());

    let admin = PubSubAdmin::connect(&PubSubConfig::new(PROJECT).with_emulator(&host)).await?;
    let topic = format!("batch-delay-{}", std::process::id());
    admin.create_topic(&topic).await?;
    println!(
        "| keys | C | delay ms | publishes | RPCs | messages/RPC | p50 ms | p99 ms | publishes/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for ordered in keys.split(',').map(|k| k == "on") {
        for &c in &concurrency {
            for &delay in &delays {
                let shape = Shape {
                    total,
                    concurrency: c,
                    work_ms,
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

fn list(arg: Option<String>, default: &[u64]) -> Result<Vec<u64>> {
    match arg {
        None => Ok(default.to_vec()),
        Some(a) => Ok(a
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?),
    }
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
    let rpcs = Arc::new(AtomicU64::new(0));
    let proxy = counting_proxy(emulator.to_string(), rpcs.clone()).await?;
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
    rpcs.store(0, Ordering::SeqCst);
    let start = Instant::now();
    let mut latencies = publish_all(&publisher, topic, *shape).await?;
    let elapsed = start.elapsed();
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
        latencies[i - 1].as_secs_f64() * 1000.0
    };
    Ok(Run {
        rpcs: rpcs.load(Ordering::SeqCst),
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

/// A loopback TCP proxy to `upstream` that counts the HTTP/2 HEADERS frames
/// clients send (one per gRPC call); returns its `host:port`.
async fn counting_proxy(upstream: String, rpcs: Arc<AtomicU64>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, rpcs) = (upstream.clone(), rpcs.clone());
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    let _ = relay(client, server, rpcs).await;
                }
            });
        }
    });
    Ok(address)
}

async fn relay(client: TcpStream, server: TcpStream, rpcs: Arc<AtomicU64>) -> Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down =
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut frames = FrameCounter::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        let slice = buffer.get(..n).unwrap_or_default();
        rpcs.fetch_add(frames.feed(slice), Ordering::SeqCst);
        server_write.write_all(slice).await?;
    }
    down.abort();
    Ok(())
}

/// Walks the client side of an HTTP/2 connection, counting HEADERS frames.
#[derive(Default)]
struct FrameCounter {
    /// Bytes read so far: the preface, then every frame.
    seen: usize,
    /// Offset of the next frame header.
    next_frame: usize,
    /// The part of a frame header split across reads.
    header: Vec<u8>,
}

impl FrameCounter {
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut headers = 0;
        let start = self.seen;
        self.seen += bytes.len();
        if self.next_frame == 0 {
            self.next_frame = PREFACE_LEN;
        }
        while self.next_frame < self.seen {
            let from = self.next_frame.max(start) - start;
            let want = FRAME_HEADER_LEN - self.header.len();
            let take = want.min(bytes.len() - from);
            self.header
                .extend_from_slice(bytes.get(from..from + take).unwrap_or_default());
            if self.header.len() < FRAME_HEADER_LEN {
                break;
            }
            let length = (usize::from(self.header[0]) << 16)
                | (usize::from(self.header[1]) << 8)
                | usize::from(self.header[2]);
            if self.header[3] == HEADERS_FRAME {
                headers += 1;
            }
            self.next_frame += FRAME_HEADER_LEN + length;
            self.header.clear();
        }
        headers
    }
}
