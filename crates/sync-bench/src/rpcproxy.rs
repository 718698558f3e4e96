//! Counting gRPC calls on the wire: a loopback TCP proxy in front of an
//! emulator that reads the HTTP/2 frames clients send and counts HEADERS
//! frames (one per gRPC call: a unary call's request is HEADERS, then DATA
//! ending the stream; the client sends no trailers) and the DATA bytes (the
//! serialized requests, gRPC's 5-byte prefix included).
//!
//! The count is the same for any client, whatever it reports about itself,
//! so the previous commit's binary and this one are counted alike, and the
//! publish RPCs a batching client sends (which it does not report) are
//! counted too. `scripts/bench.sh` runs it for the counting runs only: every
//! byte crosses one more socket pair, which costs the proxy CPU and adds a
//! little latency, so the throughput runs go direct.
//!
//! With a delay, it also stands in for production's distance: every chunk a
//! client sends is held for that long before it is relayed (a delay line,
//! in order, without holding up the chunks behind it), so each call waits
//! the delay more than the emulator alone would make it wait.

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The HTTP/2 client connection preface, sent before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;
const DATA_FRAME: u8 = 0x0;
const HEADERS_FRAME: u8 = 0x1;

/// What one route has carried from its clients.
#[derive(Debug, Default)]
pub struct Counts {
    /// HEADERS frames: gRPC calls.
    pub calls: AtomicU64,
    /// DATA frame payload bytes: the requests.
    pub request_bytes: AtomicU64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({
            "calls": self.calls.load(Ordering::SeqCst),
            "request_bytes": self.request_bytes.load(Ordering::SeqCst),
        })
    }
}

/// A route: a name, the port it listens on, the `host:port` it relays to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Name in the counts (e.g. `new_datastore`).
    pub name: String,
    /// Loopback port to listen on (0: any).
    pub listen: u16,
    /// Where to relay, `host:port`.
    pub upstream: String,
}

impl std::str::FromStr for Route {
    type Err = String;

    /// `NAME=LISTEN_PORT=HOST:PORT`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected NAME=LISTEN_PORT=HOST:PORT");
        let mut parts = s.splitn(3, '=');
        let (Some(name), Some(port), Some(upstream)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if name.is_empty() || !upstream.contains(':') {
            return Err(bad());
        }
        Ok(Self {
            name: name.to_string(),
            listen: port.parse().map_err(|_| bad())?,
            upstream: upstream.to_string(),
        })
    }
}

/// Starts relaying `upstream` on a loopback port into `counts`, each chunk
/// from a client `delay` late; returns the `host:port` to point a client
/// at. Runs until the runtime stops.
///
/// # Errors
/// When the port cannot be bound.
pub async fn start(
    listen: u16,
    upstream: String,
    counts: Arc<Counts>,
    delay: Duration,
) -> Result<String> {
    let listener = TcpListener::bind(("127.0.0.1", listen))
        .await
        .with_context(|| format!("binding 127.0.0.1:{listen}"))?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counts) = (upstream.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = relay(client, server, counts, delay).await;
                }
            });
        }
    });
    Ok(address)
}

/// Serves every route, each request `delay` late, and, on `control`
/// (127.0.0.1), answers any request with the counts so far as JSON
/// (`{"NAME": {"calls": N, "request_bytes": N}}`); runs until killed.
///
/// # Errors
/// When a port cannot be bound.
pub async fn serve(routes: &[Route], control: u16, delay: Duration) -> Result<()> {
    let mut all = BTreeMap::new();
    for r in routes {
        let counts = Arc::new(Counts::default());
        start(r.listen, r.upstream.clone(), Arc::clone(&counts), delay).await?;
        all.insert(r.name.clone(), counts);
    }
    let listener = TcpListener::bind(("127.0.0.1", control))
        .await
        .with_context(|| format!("binding the control port 127.0.0.1:{control}"))?;
    loop {
        let (mut s, _) = listener.accept().await?;
        let body: Map<String, Value> = all.iter().map(|(k, c)| (k.clone(), c.json())).collect();
        tokio::spawn(async move {
            // Read the request head (any request will do), then answer.
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head).await;
            let body = Value::Object(body).to_string();
            let reply = format!(
                "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    counts: Arc<Counts>,
    delay: Duration,
) -> Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down =
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    // The delay line: chunks leave in order, each `delay` after it came.
    let (line, mut held) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let up = tokio::spawn(async move {
        while let Some((due, chunk)) = held.recv().await {
            tokio::time::sleep_until(due).await;
            server_write.write_all(&chunk).await?;
        }
        std::io::Result::Ok(())
    });
    let mut frames = FrameCounter::default();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = client_read.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        let slice = buffer.get(..n).unwrap_or_default();
        let (calls, bytes) = frames.feed(slice);
        counts.calls.fetch_add(calls, Ordering::SeqCst);
        counts.request_bytes.fetch_add(bytes, Ordering::SeqCst);
        if line
            .send((tokio::time::Instant::now() + delay, slice.to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(line);
    let _ = up.await;
    down.abort();
    Ok(())
}

/// Walks the client side of an HTTP/2 connection, frame by frame, across
/// reads that split frames (and frame headers) anywhere.
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
    /// Feeds the next bytes; returns the HEADERS frames and DATA payload
    /// bytes whose frame headers they completed.
    fn feed(&mut self, bytes: &[u8]) -> (u64, u64) {
        let (mut headers, mut data) = (0, 0);
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
            match self.header[3] {
                HEADERS_FRAME => headers += 1,
                DATA_FRAME => data += length as u64,
                _ => {}
            }
            self.next_frame += FRAME_HEADER_LEN + length;
            self.header.clear();
        }
        (headers, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend(std::iter::repeat_n(0xAB, payload));
        f
    }

    fn stream() -> Vec<u8> {
        let mut s = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        s.extend(frame(0x4, 12)); // SETTINGS
        s.extend(frame(HEADERS_FRAME, 40));
        s.extend(frame(DATA_FRAME, 300));
        s.extend(frame(0x8, 4)); // WINDOW_UPDATE
        s.extend(frame(HEADERS_FRAME, 9));
        s.extend(frame(DATA_FRAME, 70_000));
        s
    }

    #[test]
    fn counts_calls_and_request_bytes_however_the_reads_split_the_frames() {
        let s = stream();
        for chunk in [1, 2, 5, 9, 10, 17, 1000, s.len()] {
            let mut c = FrameCounter::default();
            let (mut calls, mut bytes) = (0, 0);
            for piece in s.chunks(chunk) {
                let (h, d) = c.feed(piece);
                calls += h;
                bytes += d;
            }
            assert_eq!((calls, bytes), (2, 70_300), "reads of {chunk} bytes");
        }
    }

    #[test]
    fn routes_parse_and_bad_ones_are_refused() {
        let r: Route = "new_datastore=4001=127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            r,
            Route {
                name: "new_datastore".into(),
                listen: 4001,
                upstream: "127.0.0.1:8081".into()
            }
        );
        for bad in ["x", "x=1", "=1=h:1", "x=port=h:1", "x=1=host"] {
            assert!(bad.parse::<Route>().is_err(), "{bad}");
        }
    }
}
