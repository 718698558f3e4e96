//! The first event after ready: start the sync function, and the moment
//! `/healthz` first answers 200 send one push, then 20 more one after
//! another (the steady state of the same process). Readiness is polled
//! every 200 µs on a fresh loopback connection, so "ready" is the process's
//! own start-up (configuration, clients, its first Datastore and Pub/Sub
//! calls) plus a fraction of a millisecond.

use crate::{bodies::Spec, proc::rss_kib};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts each binary (`(name, path)`, taking turns) `runs` times with
/// `env` and a free `PORT`, printing one result per start: spawn to ready,
/// RSS then, the first push's time and whether it was answered 204 (a 503
/// would have Pub/Sub send it again), the steady state's median.
///
/// # Errors
/// When a binary exits or is not ready within 30 s, or a push fails.
pub fn run(bins: &[(String, String)], runs: u32, env: &[(String, String)]) -> Result<()> {
    for (run, (name, bin)) in (1..=runs).flat_map(|r| bins.iter().map(move |b| (r, b))) {
        let prefix = format!("first-{name}-{}-r{run}", std::process::id());
        let spec = Spec::new(21, prefix, false);
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let child = Command::new(bin)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut child = Killed(child);
        while request(&addr, "GET /healthz", "").ok() != Some(200) {
            if let Some(status) = child.0.try_wait()? {
                let (mut err, stderr) = (String::new(), child.0.stderr.take());
                let _ = stderr.map(|mut e| e.read_to_string(&mut err));
                bail!("{bin} exited with {status}: {err}");
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "{bin} not ready in 30 s"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
        let rss = rss_kib(child.0.id()).map(|(rss, _)| rss);
        let mut times = Vec::new();
        for k in 0..21 {
            let sent = Instant::now();
            let status = request(&addr, "POST /", &spec.body(k))?;
            times.push((sent.elapsed().as_secs_f64() * 1000.0, status));
        }
        let (first_ms, first_status) = times[0];
        let mut steady: Vec<f64> = times[1..].iter().map(|(ms, _)| *ms).collect();
        anyhow::ensure!(
            times[1..].iter().all(|t| t.1 == 204),
            "a steady push was not answered 204"
        );
        steady.sort_by(f64::total_cmp);
        let p50 = steady[steady.len() / 2];
        let line = json!({
            "item": "first_event", "case": format!("{name}: after ready"), "run": run,
            "ready_ms": ready_ms, "rss_at_ready_kib": rss, "first_ms": first_ms,
            "first_ok": u8::from(first_status == 204), "steady_p50_ms": p50, "first_over_p50": first_ms / p50,
        });
        println!("{line}");
    }
    Ok(())
}

/// One HTTP/1.1 request on a new connection; returns the status.
fn request(addr: &SocketAddr, line: &str, body: &str) -> Result<u16> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_nodelay(true)?;
    let length = body.len();
    let head = "Host: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close";
    write!(
        s,
        "{line} HTTP/1.1\r\n{head}\r\nContent-Length: {length}\r\n\r\n{body}"
    )?;
    let mut status = [0u8; 12];
    s.read_exact(&mut status).context("reading the answer")?;
    let code = std::str::from_utf8(&status[9..])
        .ok()
        .and_then(|s| s.parse().ok());
    code.context("no HTTP status")
}
