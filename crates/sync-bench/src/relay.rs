//! A loopback relay in front of an emulator: production's distance, and the
//! publish RPCs the Pub/Sub client does not report.
//!
//! With a delay, every chunk a client sends is held that long before it is
//! relayed (a delay line: in order, without holding up the chunks behind
//! it), so each call waits that much more than the emulator alone makes it
//! wait, as a call to a distant Datastore does.
//!
//! It also counts, per route, the HTTP/2 HEADERS frames clients send (one
//! per gRPC call: a unary request is HEADERS, then DATA) and their DATA
//! bytes. The bench reads them for Pub/Sub only: the official client
//! batches announcements into `Publish` RPCs it does not count, while the
//! store counts its own Datastore RPCs.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A route, `NAME=LISTEN_PORT=HOST:PORT`: its name, port and upstream.
pub type Route = (String, u16, String);

/// What to relay.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `NAME=LISTEN_PORT=HOST:PORT`, repeatable.
    #[arg(long = "route", required = true, value_parser = route)]
    routes: Vec<Route>,
    #[arg(long, env = "PORT")]
    control_port: u16,
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// Parses a route.
///
/// # Errors
/// When it is not `NAME=LISTEN_PORT=HOST:PORT`.
pub fn route(s: &str) -> Result<Route, String> {
    let mut parts = s.splitn(3, '=');
    match (
        parts.next(),
        parts.next().and_then(|p| p.parse().ok()),
        parts.next(),
    ) {
        (Some(name), Some(port), Some(upstream)) => Ok((name.into(), port, upstream.into())),
        _ => Err(format!("{s:?}: expected NAME=LISTEN_PORT=HOST:PORT")),
    }
}

/// Calls and request bytes one route carried.
type Counts = [AtomicU64; 2];

/// Relays every route, each chunk `delay_ms` late, and answers any request
/// on the control port with the counts so far as JSON
/// (`{"NAME": {"calls": N, "request_bytes": N}}`); runs until killed.
///
/// # Errors
/// When a port cannot be bound.
pub async fn serve(args: Args) -> Result<()> {
    let (mut all, delay) = (Vec::new(), Duration::from_millis(args.delay_ms));
    for (name, port, upstream) in args.routes {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .context("binding a route")?;
        let counts = Arc::new(Counts::default());
        all.push((name, Arc::clone(&counts)));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, counts) = (upstream.clone(), Arc::clone(&counts));
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, &counts, delay).await;
                    }
                });
            }
        });
    }
    let listener = TcpListener::bind(("127.0.0.1", args.control_port))
        .await
        .context("binding the control port")?;
    loop {
        let (mut s, _) = listener.accept().await?;
        let count =
            |c: &Counts| json!({"calls": c[0].load(Relaxed), "request_bytes": c[1].load(Relaxed)});
        let body: Map<String, Value> = all
            .iter()
            .map(|(name, c)| (name.clone(), count(c)))
            .collect();
        let body = Value::Object(body).to_string();
        tokio::spawn(async move {
            let _ = s.read(&mut [0u8; 1024]).await; // the request, whatever it is
            let head = format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            let _ = s.write_all((head + &body).as_bytes()).await;
        });
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counts: &Counts,
    delay: Duration,
) -> Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down =
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let (line, mut held) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let up = tokio::spawn(async move {
        while let Some((due, chunk)) = held.recv().await {
            tokio::time::sleep_until(due).await;
            server_write.write_all(&chunk).await?;
        }
        std::io::Result::Ok(())
    });
    let (mut frames, mut buffer) = (Frames::default(), vec![0u8; 64 * 1024]);
    loop {
        let n = client_read.read(&mut buffer).await?;
        let chunk = buffer.get(..n).unwrap_or_default();
        let (calls, bytes) = frames.feed(chunk);
        counts[0].fetch_add(calls, Relaxed);
        counts[1].fetch_add(bytes, Relaxed);
        if n == 0 || line.send((Instant::now() + delay, chunk.to_vec())).is_err() {
            break;
        }
    }
    drop(line);
    let _ = up.await;
    down.abort();
    Ok(())
}

/// Walks the client side of an HTTP/2 connection frame by frame, across
/// reads that split frames (and frame headers) anywhere.
#[derive(Default)]
struct Frames {
    /// Bytes read so far: the 24-byte preface, then frames.
    seen: usize,
    /// Offset of the next frame header (0: not past the preface yet).
    next: usize,
    /// The part of a 9-byte frame header split across reads.
    header: Vec<u8>,
}

impl Frames {
    /// Feeds the next bytes; returns the HEADERS frames and DATA payload
    /// bytes whose frame headers they complete.
    fn feed(&mut self, bytes: &[u8]) -> (u64, u64) {
        let (start, mut calls, mut data) = (self.seen, 0, 0);
        self.seen += bytes.len();
        self.next = self.next.max(24);
        while self.next < self.seen {
            let from = self.next.max(start) - start;
            let take = (9 - self.header.len()).min(bytes.len() - from);
            self.header
                .extend_from_slice(bytes.get(from..from + take).unwrap_or_default());
            let [l0, l1, l2, kind, _, _, _, _, _] = self.header[..] else {
                break;
            };
            let length = (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2);
            match kind {
                0x1 => calls += 1,
                0x0 => data += length as u64,
                _ => {}
            }
            self.next += 9 + length;
            self.header.clear();
        }
        (calls, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_calls_and_request_bytes_however_reads_split_the_frames() {
        let mut s = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS, HEADERS, DATA, WINDOW_UPDATE, HEADERS, DATA
        for (kind, len) in [(4, 12), (1, 40), (0, 300), (8, 4), (1, 9), (0, 70_000u32)] {
            s.extend((len << 8 | kind).to_be_bytes()); // length, type
            s.extend([0, 0, 0, 0, 1]); // flags, stream
            s.extend(std::iter::repeat_n(0xAB, len as usize));
        }
        for chunk in [1, 2, 5, 9, 10, 17, 1000, s.len()] {
            let mut f = Frames::default();
            let counts: Vec<(u64, u64)> = s.chunks(chunk).map(|p| f.feed(p)).collect();
            let sum = counts.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            assert_eq!(sum, (2, 70_300), "reads of {chunk} bytes");
        }
    }
}
