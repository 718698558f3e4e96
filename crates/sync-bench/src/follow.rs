//! End to end: follows the sync function's JSON log until every event of the
//! load is processed, reading each line as `syncctl lag` does.
//!
//! The run ends at the line on which the last distinct message is first
//! seen: its own timestamp, so polling does not enter the figure. The
//! latency is each message's `publishToApplyMs` (Pub/Sub's publish time to
//! the end of processing). Meanwhile the CPU time of the named processes is
//! counted; the function's peak RSS is read at the end.

use crate::proc::{cpu_s, rss_kib};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use syncctl::lag::{parse_line, percentile_sorted, FirstLines, LogLine};

/// An end-to-end run to follow.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    case: String,
    #[arg(long)]
    run: u32,
    /// The sync function's stdout (`LOG_FORMAT=json`).
    #[arg(long)]
    log: PathBuf,
    /// Distinct messages to wait for.
    #[arg(long)]
    expect: usize,
    /// When the load started, Unix ms.
    #[arg(long)]
    start_ms: i64,
    /// The sync function's pid (its peak RSS).
    #[arg(long)]
    pid: u32,
    /// A process whose CPU time to count, `NAME=pid:N` or `NAME=pgid:N`.
    #[arg(long = "cpu", value_parser = crate::proc::pair)]
    cpu: Vec<(String, String)>,
}

/// Follows the run for at most 300 s and prints its result.
///
/// # Errors
/// When the log cannot be read, or not every event was processed.
pub fn run(a: &Args) -> Result<()> {
    let result = follow(a, Duration::from_secs(300))?;
    println!("{result}");
    anyhow::ensure!(
        result["complete"] == json!(true),
        "not every event was processed in 300 s"
    );
    Ok(())
}

/// Follows the log until every message was processed or `timeout` passed.
fn follow(a: &Args, timeout: Duration) -> Result<Value> {
    let (log, expect, cpu) = (&a.log, a.expect, &a.cpu);
    let deadline = Instant::now() + timeout;
    let cpu_before: Vec<Option<f64>> = cpu.iter().map(|(_, of)| cpu_s(of)).collect();
    let (mut offset, mut partial, mut first) = (0, Vec::new(), FirstLines::default());
    let (mut distinct, mut last_ms, mut retries, mut latencies) = (0, None, 0, Vec::new());
    while distinct < expect && Instant::now() < deadline {
        if let Ok(mut f) = std::fs::File::open(log) {
            f.seek(SeekFrom::Start(offset))?;
            offset += f.read_to_end(&mut partial).context("reading the log")? as u64;
        }
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            match parse_line(&String::from_utf8_lossy(&line)) {
                LogLine::Retry => retries += 1,
                LogLine::Processed(p) if first.is_first(&p) => {
                    distinct += 1;
                    latencies.extend(p.publish_to_apply_ms);
                    last_ms = p.time_ms.or(last_ms);
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    latencies.sort_by(f64::total_cmp);
    let secs = last_ms.map(|t| (t - a.start_ms) as f64 / 1000.0);
    let mut result = json!({
        "item": "end_to_end", "case": a.case, "run": a.run, "events": distinct,
        "complete": distinct >= expect, "retries": retries,
        "events_per_s": secs.map(|s| distinct as f64 / s.max(1e-3)),
        "p50_ms": percentile_sorted(&latencies, 50.0), "p99_ms": percentile_sorted(&latencies, 99.0),
        "peak_rss_kib": rss_kib(a.pid).map(|(_, peak)| peak),
    });
    for ((name, of), before) in cpu.iter().zip(cpu_before) {
        let used = cpu_s(of).zip(before).map(|(after, before)| after - before);
        result[format!("cpu_ms_per_event_{name}")] =
            json!(used.map(|s| s * 1000.0 / distinct.max(1) as f64));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_log_counting_each_message_once() -> Result<()> {
        let line = r#"{"time":"2026-11-26T07:55:45.386Z","span":{"message_id":"7"},"message":"event processed","outcome":"applied","publishToApplyMs":42}"#;
        let retry = r#"{"message":"store failed","outcome":"retry"}"#;
        let second = line.replace("\"7\"", "\"8\"").replace("45.386", "46.386");
        let (me, case) = (std::process::id(), String::new());
        let log = std::env::temp_dir().join(format!("sync-bench-follow-{me}.log"));
        std::fs::write(
            &log,
            format!("{line}\n{line}\n{retry}\nnot json\n{second}\npartial"),
        )?;
        let cpu = vec![("me".to_string(), format!("pid:{me}"))];
        let args = Args {
            case,
            run: 1,
            log: log.clone(),
            expect: 2,
            start_ms: 1_795_679_744_386,
            pid: me,
            cpu,
        };
        let m = follow(&args, Duration::from_secs(5));
        std::fs::remove_file(log)?;
        let m = m?;
        let want = json!({"events": 2, "complete": true, "retries": 1, "events_per_s": 1.0, "p50_ms": 42.0});
        assert!(
            want.as_object()
                .is_some_and(|w| w.iter().all(|(k, v)| m[k] == *v)),
            "{m}"
        );
        assert!(m["cpu_ms_per_event_me"].is_number() && m["peak_rss_kib"].is_number());
        Ok(())
    }
}
