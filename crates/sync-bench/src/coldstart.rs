//! Cold start: from spawning the binary to its first successful `/healthz`;
//! and the first event after it, against the same process's steady state.
//!
//! Polls every 200 µs with a plain HTTP/1.1 request over a fresh loopback
//! connection, so the figure is the process's own start-up (configuration,
//! logging, clients, bind) plus at most a fraction of a millisecond.

use crate::proc::rss_kib;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One start.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Spawn to first `200` on `/healthz`, milliseconds.
    pub ms: f64,
    /// VmRSS after `settle` of idling, KiB (when asked for).
    pub idle_rss_kib: Option<u64>,
}

fn healthy(addr: &SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nodelay(true);
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started binary, killed when dropped.
pub struct Running {
    child: Killed,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Spawn to first `200` on `/healthz`, milliseconds.
    pub ready_ms: f64,
}

/// Starts `bin` with `env` (plus `PORT`) and waits for its first `200` on
/// `/healthz`.
///
/// # Errors
/// When it cannot start, exits, or is not healthy within `timeout`.
pub fn spawn_ready(bin: &Path, env: &[(String, String)], timeout: Duration) -> Result<Running> {
    let port = crate::probe::bind(0)?.local_addr()?.port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let child = Command::new(bin)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut child = Killed(child);
    loop {
        if healthy(&addr) {
            break;
        }
        if let Some(status) = child.0.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("{} exited with {status}: {err}", bin.display());
        }
        if started.elapsed() > timeout {
            bail!("{} not healthy within {timeout:?}", bin.display());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(Running {
        child,
        addr,
        ready_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Starts `bin` with `env` (plus `PORT`) once, waits for `/healthz`, then
/// optionally idles for `settle` and reads its RSS; kills it.
///
/// # Errors
/// When it cannot start, exits, or is not healthy within `timeout`.
pub fn start_once(
    bin: &Path,
    env: &[(String, String)],
    timeout: Duration,
    settle: Option<Duration>,
) -> Result<Start> {
    let running = spawn_ready(bin, env, timeout)?;
    let idle_rss_kib = match settle {
        Some(d) => {
            std::thread::sleep(d);
            rss_kib(running.child.0.id()).map(|(rss, _)| rss)
        }
        None => None,
    };
    Ok(Start {
        ms: running.ready_ms,
        idle_rss_kib,
    })
}

/// The first event after ready, against the steady state of the same process.
#[derive(Debug, Clone, Copy)]
pub struct FirstEvent {
    /// Spawn to first `200` on `/healthz`, milliseconds.
    pub ready_ms: f64,
    /// The push sent the moment `/healthz` answered 200: sent to answered, ms.
    pub first_ms: f64,
    /// Whether that push was answered 204 (a 503 means Pub/Sub would
    /// deliver it again later).
    pub first_ok: bool,
    /// The median of the pushes sent one after another after it, ms.
    pub steady_p50_ms: f64,
}

/// Starts `bin`, and the moment `/healthz` answers 200 sends `bodies[0]`,
/// then the rest one after another, each on a new connection (so every
/// push is timed alike); each of the rest must be answered 204.
///
/// # Errors
/// When the binary does not become healthy, or a push is not answered 204.
pub fn first_event(
    bin: &Path,
    env: &[(String, String)],
    bodies: &[String],
    timeout: Duration,
) -> Result<FirstEvent> {
    anyhow::ensure!(bodies.len() >= 2, "needs a first push and steady ones");
    let running = spawn_ready(bin, env, timeout)?;
    let (first_ms, first_ok) = push(&running.addr, &bodies[0])?;
    let mut steady = Vec::with_capacity(bodies.len() - 1);
    for body in &bodies[1..] {
        let (ms, ok) = push(&running.addr, body)?;
        anyhow::ensure!(ok, "a steady-state push was not answered 204");
        steady.push(ms);
    }
    Ok(FirstEvent {
        ready_ms: running.ready_ms,
        first_ms,
        first_ok,
        steady_p50_ms: crate::stats::median(&steady).unwrap_or(f64::NAN),
    })
}

/// POSTs one push body; returns milliseconds from connecting to the status
/// line, and whether it was 204.
fn push(addr: &SocketAddr, body: &str) -> Result<(f64, bool)> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_nodelay(true)?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .context("reading the push's answer")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, head.starts_with(b"HTTP/1.1 204")))
}
