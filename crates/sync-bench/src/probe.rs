//! How many pushes the Pub/Sub emulator keeps in flight per subscription.
//!
//! A loopback HTTP server that answers every POST with 204 after a fixed
//! delay and records, per request path, the most requests it held at once.
//! Point push subscriptions at different paths of it, publish, and the
//! maximum per path is the emulator's push concurrency: the concurrency the
//! end-to-end path runs at, whatever the sync function could take.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Per path: requests now, most at once, answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// In flight now.
    pub current: usize,
    /// Most in flight at once.
    pub max: usize,
    /// Answered.
    pub answered: usize,
}

#[derive(Default)]
struct Shared {
    paths: Mutex<BTreeMap<String, PathStats>>,
    answered: AtomicUsize,
}

impl Shared {
    fn with<T>(&self, path: &str, f: impl FnOnce(&mut PathStats) -> T) -> T {
        let mut map = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(path.to_string()).or_default())
    }
}

/// Reads one request; returns its path, or `None` at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(path)
}

fn serve(stream: TcpStream, shared: &Shared, delay: Duration, deadline: Instant) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while Instant::now() < deadline {
        let Some(path) = read_request(&mut reader) else {
            return;
        };
        shared.with(&path, |s| {
            s.current += 1;
            s.max = s.max.max(s.current);
        });
        std::thread::sleep(delay);
        shared.with(&path, |s| {
            s.current -= 1;
            s.answered += 1;
        });
        shared.answered.fetch_add(1, Ordering::SeqCst);
        if writer
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// Serves on `listener` until `expect` requests were answered or `timeout`
/// passed; returns the statistics per path. Bind the listener first (see
/// [`bind`]): connections made after that wait in its backlog.
///
/// # Errors
/// When accepting fails.
pub fn run(
    listener: TcpListener,
    delay: Duration,
    expect: usize,
    timeout: Duration,
) -> Result<BTreeMap<String, PathStats>> {
    listener.set_nonblocking(true)?;
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && shared.answered.load(Ordering::SeqCst) < expect {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, &shared, delay, deadline));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("accepting a connection"),
        }
    }
    let map = shared
        .paths
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(map)
}

/// Binds `127.0.0.1:port` (0 for any free port).
///
/// # Errors
/// When the port cannot be bound.
pub fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("binding port {port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(port: u16, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    }

    #[test]
    fn counts_requests_in_flight_per_path() -> Result<()> {
        let listener = bind(0)?;
        let port = listener.local_addr()?.port();
        let server = std::thread::spawn(move || {
            run(
                listener,
                Duration::from_millis(300),
                3,
                Duration::from_secs(10),
            )
        });
        let clients: Vec<_> = ["/a", "/a", "/b"]
            .into_iter()
            .map(|p| std::thread::spawn(move || post(port, p)))
            .collect();
        for c in clients {
            let head = c.join().expect("client")?;
            assert_eq!(head, "HTTP/1.1 204");
        }
        let stats = server.join().expect("server")?;
        assert_eq!(stats.get("/a").map(|s| (s.max, s.answered)), Some((2, 2)));
        assert_eq!(stats.get("/b").map(|s| (s.max, s.answered)), Some((1, 1)));
        Ok(())
    }
}
