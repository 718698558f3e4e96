//! Cold start: from spawning the binary to its first successful `/healthz`.
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
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let idle_rss_kib = match settle {
        Some(d) => {
            std::thread::sleep(d);
            rss_kib(child.0.id()).map(|(rss, _)| rss)
        }
        None => None,
    };
    Ok(Start { ms, idle_rss_kib })
}
