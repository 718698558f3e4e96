//! The sync function's log as an operator's lag figure: which lines report a
//! processed delivery, its publish-to-apply latency, and percentiles of it.
//!
//! The sync function (with `LOG_FORMAT=json`) writes one `"event processed"`
//! line per applied, refreshed, duplicate or stale delivery, with `outcome`,
//! the Pub/Sub message id in its `span` and [`PUBLISH_TO_APPLY_FIELD`] (Pub/Sub
//! publish time to the end of processing, on the function's clock). A message
//! Pub/Sub delivered again has a second line with a larger figure; the lag of
//! a message is that of its first line ([`FirstLines`]).
//!
//! `syncctl lag` ([`run`]) and the benchmark's log follower (`sync-bench`)
//! read lines through [`parse_line`], and both take percentiles with
//! [`percentile_sorted`]. `deploy/lib.sh` names the same entry and field for
//! the log-based metric; a test of the `syncctl` binary checks that they agree.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

/// The JSON field of a processed delivery's publish-to-apply latency, ms: the
/// sync function's `publish_to_apply_ms` after the Cloud Logging writer's
/// camelCase conversion.
pub const PUBLISH_TO_APPLY_FIELD: &str = "publishToApplyMs";
/// The `message` of the line the sync function writes per processed delivery.
pub const PROCESSED_MESSAGE: &str = "event processed";
/// The `outcome` of a delivery answered 503 (Pub/Sub redelivers it).
pub const RETRY_OUTCOME: &str = "retry";

/// What one line of the sync function's log is.
#[derive(Debug, Clone, PartialEq)]
pub enum LogLine {
    /// Not a JSON object (text logging, a panic message, a cut line).
    NotJson,
    /// A delivery answered 503 (`outcome` `retry`).
    Retry,
    /// A processed delivery.
    Processed(Processed),
    /// Any other JSON line.
    Other,
}

/// A processed delivery's line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Processed {
    /// The Pub/Sub message id (`span.message_id`).
    pub message_id: Option<String>,
    /// `outcome`: applied, refreshed, duplicate or stale.
    pub outcome: Option<String>,
    /// Publish to end of processing, ms; absent when the delivery carried no
    /// publish time.
    pub publish_to_apply_ms: Option<f64>,
    /// When the line was written (`time`), Unix ms.
    pub time_ms: Option<i64>,
}

/// Reads one line of the sync function's log.
pub fn parse_line(line: &str) -> LogLine {
    let Ok(Value::Object(v)) = serde_json::from_str::<Value>(line.trim()) else {
        return LogLine::NotJson;
    };
    let text = |key: &str| v.get(key).and_then(Value::as_str);
    if text("outcome") == Some(RETRY_OUTCOME) {
        return LogLine::Retry;
    }
    if text("message") != Some(PROCESSED_MESSAGE) {
        return LogLine::Other;
    }
    LogLine::Processed(Processed {
        message_id: v
            .get("span")
            .and_then(|s| s.get("message_id"))
            .and_then(Value::as_str)
            .map(str::to_string),
        outcome: text("outcome").map(str::to_string),
        publish_to_apply_ms: v.get(PUBLISH_TO_APPLY_FIELD).and_then(Value::as_f64),
        time_ms: text("time")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis()),
    })
}

/// Tells a message's first processed line from its redeliveries'.
#[derive(Debug, Default)]
pub struct FirstLines {
    seen: HashSet<String>,
}

impl FirstLines {
    /// Whether `p` is the first line of its message; a line without a
    /// message id always counts as first.
    pub fn is_first(&mut self, p: &Processed) -> bool {
        p.message_id
            .as_ref()
            .is_none_or(|id| self.seen.insert(id.clone()))
    }
}

/// The `p`-th percentile (0–100) of `sorted` by nearest rank, or `None` when
/// empty. `sorted` must be sorted ascending.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// What a log showed about publish-to-apply lag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LagSummary {
    /// Lines read.
    pub lines: usize,
    /// Lines that were not JSON objects, skipped.
    pub not_json: usize,
    /// Processed lines of a message already seen (redeliveries), not counted.
    pub repeated: usize,
    /// First processed lines without the latency field (no publish time).
    pub without_latency: usize,
    /// The lag of each message's first processed line, ms, sorted.
    pub latencies_ms: Vec<f64>,
}

/// Count, p50, p90, p99 and max of the lag, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// Messages with a lag.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl LagSummary {
    /// Reads a whole log. Lines need not be UTF-8 (a bad one is skipped).
    ///
    /// # Errors
    /// When reading fails.
    pub fn read(mut input: impl BufRead) -> std::io::Result<Self> {
        let mut summary = Self::default();
        let mut first = FirstLines::default();
        let mut buf = Vec::new();
        while input.read_until(b'\n', &mut buf)? > 0 {
            summary.fold(&String::from_utf8_lossy(&buf), &mut first);
            buf.clear();
        }
        summary.latencies_ms.sort_by(f64::total_cmp);
        Ok(summary)
    }

    fn fold(&mut self, line: &str, first: &mut FirstLines) {
        if line.trim().is_empty() {
            return;
        }
        self.lines += 1;
        match parse_line(line) {
            LogLine::NotJson => self.not_json += 1,
            LogLine::Processed(p) if !first.is_first(&p) => self.repeated += 1,
            LogLine::Processed(p) => match p.publish_to_apply_ms {
                Some(ms) => self.latencies_ms.push(ms),
                None => self.without_latency += 1,
            },
            LogLine::Retry | LogLine::Other => {}
        }
    }

    /// The percentiles, `None` when no line had a lag.
    pub fn percentiles(&self) -> Option<Percentiles> {
        let at = |p| percentile_sorted(&self.latencies_ms, p);
        Some(Percentiles {
            count: self.latencies_ms.len(),
            p50: at(50.0)?,
            p90: at(90.0)?,
            p99: at(99.0)?,
            max: *self.latencies_ms.last()?,
        })
    }

    /// The summary as JSON: the percentiles (null when there are none) and
    /// the line counts.
    pub fn to_json(&self) -> Value {
        let p = self.percentiles();
        json!({
            "count": self.latencies_ms.len(),
            "p50_ms": p.map(|p| p.p50),
            "p90_ms": p.map(|p| p.p90),
            "p99_ms": p.map(|p| p.p99),
            "max_ms": p.map(|p| p.max),
            "lines": self.lines,
            "not_json_lines": self.not_json,
            "repeated_lines": self.repeated,
            "without_latency": self.without_latency,
        })
    }

    /// The summary as text, `None` when no line had a lag.
    pub fn to_text(&self) -> Option<String> {
        let p = self.percentiles()?;
        let mut out = format!(
            "publish-to-apply lag over {} messages (ms): p50 {}  p90 {}  p99 {}  max {}",
            p.count, p.p50, p.p90, p.p99, p.max
        );
        let notes = [
            (self.repeated, "redelivered lines not counted"),
            (self.without_latency, "messages without a publish time"),
            (self.not_json, "non-JSON lines skipped"),
        ];
        for (n, what) in notes.iter().filter(|(n, _)| *n > 0) {
            out.push_str(&format!("\n  {n} {what}"));
        }
        Some(out)
    }
}

/// `syncctl lag --log FILE [--json]`: prints the lag percentiles of a local
/// run's sync-function log.
///
/// # Errors
/// When the file cannot be read, or holds no processed line with a lag
/// (with `--json` the summary is printed first).
pub fn run(log: &Path, json: bool) -> Result<()> {
    let file =
        std::fs::File::open(log).with_context(|| format!("cannot open {}", log.display()))?;
    let summary = LagSummary::read(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", log.display()))?;
    if json {
        println!("{}", summary.to_json());
    }
    match summary.to_text() {
        Some(text) if !json => println!("{text}"),
        Some(_) => {}
        None => bail!(
            "no \"{PROCESSED_MESSAGE}\" line with {PUBLISH_TO_APPLY_FIELD} in {} \
             ({} lines read, {} not JSON): is it the sync function's output with LOG_FORMAT=json?",
            log.display(),
            summary.lines,
            summary.not_json
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, outcome: &str, ms: u32) -> String {
        format!(
            r#"{{"time":"2026-11-26T07:55:45.386Z","span":{{"message_id":"{id}","name":"delivery"}},"severity":"INFO","message":"event processed","outcome":"{outcome}","{PUBLISH_TO_APPLY_FIELD}":{ms},"version":1}}"#
        )
    }

    fn read(text: &str) -> LagSummary {
        LagSummary::read(text.as_bytes()).expect("reading from memory")
    }

    #[test]
    fn a_processed_line_gives_its_message_outcome_lag_and_time() {
        let want = Processed {
            message_id: Some("7".into()),
            outcome: Some("applied".into()),
            publish_to_apply_ms: Some(42.0),
            time_ms: Some(1_795_679_745_386),
        };
        assert_eq!(
            parse_line(&line("7", "applied", 42)),
            LogLine::Processed(want)
        );
        let retry = r#"{"severity":"WARNING","message":"store failed; Pub/Sub will redeliver","outcome":"retry"}"#;
        assert_eq!(parse_line(retry), LogLine::Retry);
        assert_eq!(
            parse_line(r#"{"message":"listening","port":8080}"#),
            LogLine::Other
        );
        for bad in ["not json", "[1,2]", r#"{"message":"event proc"#, "42"] {
            assert_eq!(parse_line(bad), LogLine::NotJson, "{bad}");
        }
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_are_nearest_rank() {
        let text: String = (1..=100)
            .rev()
            .map(|i| line(&i.to_string(), "applied", i) + "\n")
            .collect();
        let p = read(&text).percentiles().expect("100 values");
        assert_eq!(
            p,
            Percentiles {
                count: 100,
                p50: 50.0,
                p90: 90.0,
                p99: 99.0,
                max: 100.0
            }
        );
    }

    #[test]
    fn percentiles_of_few_values_are_values_of_the_log() {
        let text = [3, 1000, 7, 5]
            .iter()
            .enumerate()
            .map(|(i, ms)| line(&i.to_string(), "stale", *ms) + "\n")
            .collect::<String>();
        let p = read(&text).percentiles().expect("4 values");
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (4, 5.0, 1000.0, 1000.0, 1000.0)
        );
    }

    #[test]
    fn a_redelivered_message_counts_once_with_its_first_lag() {
        let text = [
            line("a", "applied", 10),
            line("b", "applied", 20),
            line("a", "duplicate", 60_000),
        ]
        .join("\n");
        let s = read(&text);
        assert_eq!(s.latencies_ms, vec![10.0, 20.0]);
        assert_eq!(s.repeated, 1);
        assert_eq!(s.percentiles().map(|p| p.max), Some(20.0));
    }

    #[test]
    fn malformed_and_other_lines_are_skipped_and_counted() {
        let text = format!(
            "2026-11-26T07:55:45Z  INFO sync_function: listening\n{}\n\n{{\"cut\n{}\n\u{1}\u{ff}\n{}\n",
            line("a", "applied", 30),
            r#"{"message":"event processed","outcome":"applied"}"#,
            r#"{"message":"ready"}"#,
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not utf-8\n");
        let s = LagSummary::read(bytes.as_slice()).expect("reading from memory");
        assert_eq!(s.latencies_ms, vec![30.0]);
        assert_eq!(
            (s.lines, s.not_json, s.without_latency, s.repeated),
            (7, 4, 1, 0)
        );
        let text = s.to_text().expect("one value");
        assert!(text.contains("4 non-JSON lines skipped"), "{text}");
        assert!(text.contains("1 messages without a publish time"), "{text}");
        assert!(!text.contains("redelivered"), "{text}");
    }

    #[test]
    fn an_empty_log_has_no_percentiles_and_fails_the_command() -> Result<()> {
        let s = read("");
        assert_eq!(s.percentiles(), None);
        assert_eq!(s.to_text(), None);
        assert_eq!(s.to_json()["count"], 0);
        assert!(s.to_json()["p99_ms"].is_null());

        let dir = std::env::temp_dir().join(format!("syncctl-lag-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let text_log = dir.join("text.log");
        std::fs::write(&text_log, "2026-11-26T07:55:45Z  INFO event processed outcome=\"applied\" publish_to_apply_ms=4\n")?;
        let err = run(&text_log, false)
            .expect_err("a text log has no JSON lines")
            .to_string();
        assert!(
            err.contains("1 lines read, 1 not JSON") && err.contains("LOG_FORMAT=json"),
            "{err}"
        );
        let empty = dir.join("empty.log");
        std::fs::write(&empty, "")?;
        assert!(run(&empty, true).is_err());
        let missing = dir.join("missing.log");
        let err = run(&missing, false).expect_err("no file").to_string();
        assert!(err.contains("cannot open"), "{err}");
        let good = dir.join("good.log");
        std::fs::write(&good, line("a", "applied", 3))?;
        run(&good, false)?;
        run(&good, true)?;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn json_output_has_the_percentiles_and_the_counts() {
        let s = read(&[line("a", "applied", 1), line("b", "applied", 9), "x".into()].join("\n"));
        let v = s.to_json();
        assert_eq!(v["count"], 2);
        assert_eq!(v["p50_ms"], 1.0);
        assert_eq!(v["p99_ms"], 9.0);
        assert_eq!(v["max_ms"], 9.0);
        assert_eq!(v["not_json_lines"], 1);
        assert_eq!(v["lines"], 3);
    }
}
