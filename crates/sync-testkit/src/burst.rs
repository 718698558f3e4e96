//! A burst of pushes at one instance, as Pub/Sub push can hand it up to its
//! concurrency at once ([`burst`]), and the memory a process has used
//! ([`ProcMemory`], from `/proc/PID/status`).
//!
//! Every push is sent at the same moment, each over its own connection. A
//! push answered with a status Pub/Sub redelivers for load or for a
//! transient failure (429, 5xx), or whose connection broke, is sent again
//! after a pause, as Pub/Sub would, until it gets another answer or the
//! deadline passes; every answer is counted, so a test can tell "acked" from
//! "acked after being shed". Any other status is the push's final answer.

use crate::fixture::CapturedRequest;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a shed push waits before it is sent again (the emulator's push
/// retry is about a second; production's retry policy waits longer).
pub const REDELIVERY_PAUSE: Duration = Duration::from_millis(500);

/// The status a push is counted under when its connection broke before an
/// answer came (it is sent again, as Pub/Sub would).
pub const CONNECTION_BROKEN: u16 = 0;

/// Broken connections in a row after which a push gives up.
const MAX_BROKEN_CONNECTIONS: u32 = 5;

/// What a burst got back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BurstReport {
    /// The final status of each push, by its index.
    pub finals: Vec<u16>,
    /// Every answer that made a push be sent again, by status.
    pub redelivered: BTreeMap<u16, usize>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

impl BurstReport {
    /// Indexes of the pushes whose final answer was not 2xx.
    pub fn not_acked(&self) -> Vec<(usize, u16)> {
        self.finals
            .iter()
            .enumerate()
            .filter(|(_, s)| !(200..300).contains(*s))
            .map(|(i, s)| (i, *s))
            .collect()
    }

    /// How many answers made a push be sent again.
    pub fn redeliveries(&self) -> usize {
        self.redelivered.values().sum()
    }
}

/// Whether Pub/Sub would send a push answered `status` again for load or a
/// transient failure (and this burst does).
pub fn is_redelivered(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Sends `count` pushes at once to `url` (`http://host:port/`), push `i`
/// being `make(i)` (built in its own task, so the bodies exist only while
/// their push is in flight). A push answered 429 or 5xx is sent again after
/// [`REDELIVERY_PAUSE`] until it gets another answer; every push must have
/// its final answer within `deadline`.
///
/// # Errors
/// When a push cannot be sent, or the deadline passes first.
pub async fn burst<F>(url: &str, count: usize, make: F, deadline: Duration) -> Result<BurstReport>
where
    F: Fn(usize) -> CapturedRequest + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(count)
        .build()
        .context("building the HTTP client")?;
    let url = url.trim_end_matches('/').to_string();
    let started = Instant::now();
    let end = started + deadline;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let (make, client, url) = (Arc::clone(&make), client.clone(), url.clone());
        tasks.spawn(async move {
            let request = make(i);
            let body = bytes::Bytes::from(request.body);
            let target = format!("{url}{}", request.path);
            let mut redelivered: Vec<u16> = Vec::new();
            let mut broken = 0;
            loop {
                let mut builder = client.post(&target);
                for (k, v) in &request.headers {
                    if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("content-length")
                    {
                        builder = builder.header(k.as_str(), v.as_str());
                    }
                }
                let remaining = end.saturating_duration_since(Instant::now());
                let sent = tokio::time::timeout(remaining, builder.body(body.clone()).send())
                    .await
                    .with_context(|| format!("push {i}: no answer within {deadline:?}"))?;
                let status = match sent {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the answer to its end so the connection can be reused.
                        let _ = response.bytes().await;
                        status
                    }
                    // A broken connection is a failed push: Pub/Sub sends
                    // it again. A few in a row mean the function is gone.
                    Err(e) => {
                        broken += 1;
                        if broken > MAX_BROKEN_CONNECTIONS {
                            return Err(e).with_context(|| {
                                format!("push {i}: {broken} broken connections in a row")
                            });
                        }
                        CONNECTION_BROKEN
                    }
                };
                if status != CONNECTION_BROKEN {
                    broken = 0;
                }
                if status != CONNECTION_BROKEN && !is_redelivered(status) {
                    return Ok::<_, anyhow::Error>((i, status, redelivered));
                }
                redelivered.push(status);
                if Instant::now() + REDELIVERY_PAUSE >= end {
                    bail!("push {i}: still answered {status} at the deadline ({deadline:?})");
                }
                tokio::time::sleep(REDELIVERY_PAUSE).await;
            }
        });
    }
    let mut report = BurstReport {
        finals: vec![0; count],
        ..BurstReport::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let (i, status, redelivered) = joined.context("push task")??;
        report.finals[i] = status;
        for s in redelivered {
            *report.redelivered.entry(s).or_default() += 1;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A process's resident memory now and at its peak, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMemory {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident at once, KiB.
    pub peak_kib: u64,
}

impl ProcMemory {
    /// Reads `/proc/PID/status`.
    ///
    /// # Errors
    /// When it cannot be read (no such process, not Linux) or lacks the fields.
    pub fn of(pid: u32) -> Result<Self> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Self::parse(&text).with_context(|| format!("{path} has no VmRSS and VmHWM"))
    }

    /// The two fields of a `/proc/PID/status` text.
    pub fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Self {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// [`rss_kib`](Self::rss_kib) in MiB.
    pub fn rss_mib(&self) -> f64 {
        kib_to_mib(self.rss_kib)
    }

    /// [`peak_kib`](Self::peak_kib) in MiB.
    pub fn peak_mib(&self) -> f64 {
        kib_to_mib(self.peak_kib)
    }
}

#[allow(clippy::cast_precision_loss)] // far below 2^52
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read_in_kib() {
        let status =
            "Name:\tsync-function\nVmPeak:\t  99999 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        let m = ProcMemory::parse(status).expect("both fields");
        assert_eq!(
            m,
            ProcMemory {
                rss_kib: 10240,
                peak_kib: 20480
            }
        );
        assert!((m.peak_mib() - 20.0).abs() < f64::EPSILON);
        assert_eq!(ProcMemory::parse("Name:\tx\nVmRSS:\t1 kB\n"), None);
    }

    #[test]
    fn this_process_has_a_peak_at_least_its_resident_size() -> Result<()> {
        let m = ProcMemory::of(std::process::id())?;
        assert!(m.rss_kib > 0 && m.peak_kib >= m.rss_kib, "{m:?}");
        Ok(())
    }

    #[test]
    fn only_load_and_transient_answers_are_sent_again() {
        for s in [429, 500, 503] {
            assert!(is_redelivered(s), "{s}");
        }
        for s in [200, 204, 400, 413] {
            assert!(!is_redelivered(s), "{s}");
        }
    }
}
