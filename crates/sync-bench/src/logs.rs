//! End to end: follow the sync function's JSON log until every event is
//! processed, and summarise it.
//!
//! The sync function writes one `"event processed"` line per applied,
//! refreshed, duplicate or stale delivery, with the time it was written,
//! `outcome`, the message id in its `span` and `publishToApplyMs` (Pub/Sub
//! publish time to the end of processing). The run ends at the line on which
//! the last distinct message id is first seen: its own timestamp, so the
//! polling interval does not enter the figure. Meanwhile the function's
//! memory is sampled, and the CPU time of the processes named is counted.

use crate::proc::{cpu_ticks, machine_jiffies, rss_kib, ticks_per_second, CpuOf};
use crate::stats::p50_p99;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use syncctl::lag::{parse_line, FirstLines, LogLine};

/// What to follow.
#[derive(Debug, Clone)]
pub struct Follow {
    /// The sync function's stdout.
    pub log: PathBuf,
    /// Distinct messages to wait for.
    pub expect: usize,
    /// The function's pid, to sample memory.
    pub pid: Option<u32>,
    /// Give up after this long.
    pub timeout: Duration,
    /// Processes whose CPU time to measure over the run, by name.
    pub cpu: Vec<(String, CpuOf)>,
}

/// What the log showed.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Distinct messages processed.
    pub distinct: usize,
    /// Unix time (ms) of the first `event processed` line.
    pub first_ms: Option<i64>,
    /// Unix time (ms) of the line that completed the run.
    pub last_ms: Option<i64>,
    /// Warnings with `outcome` `retry` (503 answers).
    pub retries: u64,
    /// `publishToApplyMs` of the first line of each message, sorted.
    pub latencies_ms: Vec<f64>,
    /// Largest VmRSS sampled and VmHWM at the end, KiB.
    pub rss_peak_kib: Option<u64>,
    /// Whether `expect` messages were seen before the timeout.
    pub complete: bool,
    /// CPU seconds each named process used from the start of following to
    /// the end.
    pub cpu_s: BTreeMap<String, f64>,
    /// Share of the whole machine's CPU time that was busy meanwhile, %.
    pub machine_busy_pct: Option<f64>,
}

impl Summary {
    /// Events per second from the load's start to the completing line.
    pub fn events_per_s(&self, start_ms: i64) -> Option<f64> {
        let last = self.last_ms?;
        let secs = (last - start_ms) as f64 / 1000.0;
        (secs > 0.0).then(|| self.distinct as f64 / secs)
    }

    /// Events per second between the first and the last processed event:
    /// the rate once deliveries flow, without the time to the first push.
    pub fn steady_events_per_s(&self) -> Option<f64> {
        let secs = (self.last_ms? - self.first_ms?) as f64 / 1000.0;
        (secs > 0.0 && self.distinct > 1).then(|| (self.distinct - 1) as f64 / secs)
    }

    /// (p50, p99) publish-to-apply, ms.
    pub fn latency(&self) -> (Option<f64>, Option<f64>) {
        p50_p99(&mut self.latencies_ms.clone())
    }
}

/// Reads a growing file line by line.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new_lines(&mut self) -> Result<Vec<String>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        Ok(lines)
    }
}

/// Folds one log line into `summary` (read as `syncctl lag` reads it);
/// `first` tells a message's first line from its redeliveries'. Returns the
/// line's time when it is the first line of a new message.
fn fold_line(line: &str, summary: &mut Summary, first: &mut FirstLines) -> Option<i64> {
    match parse_line(line) {
        LogLine::Retry => {
            summary.retries += 1;
            None
        }
        LogLine::Processed(p) if first.is_first(&p) => {
            summary.distinct += 1;
            summary.latencies_ms.extend(p.publish_to_apply_ms);
            p.time_ms
        }
        LogLine::Processed(_) | LogLine::NotJson | LogLine::Other => None,
    }
}

/// Follows the log until `expect` distinct messages were processed or the
/// timeout passed, sampling memory every 100 ms.
///
/// # Errors
/// When the log cannot be read.
pub fn follow(f: &Follow) -> Result<Summary> {
    let mut tail = Tail {
        path: f.log.clone(),
        offset: 0,
        partial: Vec::new(),
    };
    let mut summary = Summary::default();
    let mut first = FirstLines::default();
    let deadline = Instant::now() + f.timeout;
    let cpu_before: Vec<u64> = f.cpu.iter().map(|(_, of)| cpu_ticks(*of)).collect();
    let machine_before = machine_jiffies();
    loop {
        for line in tail.new_lines()? {
            if let Some(t) = fold_line(&line, &mut summary, &mut first) {
                summary.first_ms.get_or_insert(t);
                if summary.distinct == f.expect {
                    summary.last_ms = Some(t);
                    summary.complete = true;
                }
            }
        }
        if let Some(pid) = f.pid {
            if let Some((rss, hwm)) = rss_kib(pid) {
                summary.rss_peak_kib = Some(summary.rss_peak_kib.unwrap_or(0).max(rss).max(hwm));
            }
        }
        if summary.complete || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let hz = ticks_per_second();
    for ((name, of), before) in f.cpu.iter().zip(cpu_before) {
        let used = cpu_ticks(*of).saturating_sub(before);
        summary.cpu_s.insert(name.clone(), used as f64 / hz);
    }
    if let (Some((b0, t0)), Some((b1, t1))) = (machine_before, machine_jiffies()) {
        let total = t1.saturating_sub(t0);
        if total > 0 {
            summary.machine_busy_pct = Some(b1.saturating_sub(b0) as f64 * 100.0 / total as f64);
        }
    }
    summary.latencies_ms.sort_by(f64::total_cmp);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"time":"2026-11-26T07:55:45.386314789Z","span":{"message_id":"7","name":"delivery"},"severity":"INFO","message":"event processed","outcome":"applied","publishToApplyMs":42,"version":1}"#;

    #[test]
    fn counts_each_message_once_and_keeps_its_latency() {
        let mut s = Summary::default();
        let mut seen = FirstLines::default();
        let t = fold_line(LINE, &mut s, &mut seen);
        assert_eq!(t, Some(1_795_679_745_386));
        assert_eq!(fold_line(LINE, &mut s, &mut seen), None);
        let retry = r#"{"time":"2026-11-26T07:55:45Z","severity":"WARNING","message":"store failed; Pub/Sub will redeliver","outcome":"retry"}"#;
        assert_eq!(fold_line(retry, &mut s, &mut seen), None);
        assert_eq!(fold_line("not json", &mut s, &mut seen), None);
        assert_eq!((s.distinct, s.retries), (1, 1));
        assert_eq!(s.latencies_ms, vec![42.0]);
    }

    #[test]
    fn follows_a_file_until_the_expected_count() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("sync-bench-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("sync.log");
        let second = LINE.replace("\"7\"", "\"8\"").replace("45.386", "46.386");
        std::fs::write(&log, format!("{LINE}\n{second}\npartial"))?;
        let s = follow(&Follow {
            log,
            expect: 2,
            pid: Some(std::process::id()),
            timeout: Duration::from_secs(5),
            cpu: vec![("me".into(), CpuOf::Pid(std::process::id()))],
        })?;
        assert!(s.complete);
        assert_eq!(s.events_per_s(1_795_679_744_386), Some(1.0));
        assert_eq!(s.steady_events_per_s(), Some(1.0));
        assert!(s.rss_peak_kib.is_some());
        // (machine_busy_pct and the CPU seconds may be 0 or None: no clock
        // tick may pass in so short a run.)
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
