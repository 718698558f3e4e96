//! Memory under Cloud Run's concurrency: each function runs as a process with
//! `MEMORY_LIMIT_MIB` set to the memory `deploy/` gives its service, and gets
//! a burst of the largest legal deliveries at the deployed concurrency, all
//! at once: 60 events of ~9.5 MB of data (too large for an entity, so the
//! sync function dead-letters them) and 20 of ~900 KB (legal, applied). A
//! push the function sheds for load is sent again, as Pub/Sub would.
//!
//! The process's peak resident memory (VmHWM) stays within the limit; every
//! delivery is acked; the sync function dead-letters every too-large event
//! exactly as it was sent, applies every legal one, and dead-letters nothing
//! else; the audit function writes an entry for every delivery. Nothing here
//! depends on timing: the deadlines are generous, and the peak is read from
//! the kernel once the burst is over.
//!
//! Each test prints one JSON line (`"item":"burst"`) with what it measured:
//! `scripts/bench.sh --only burst` runs this suite on release builds and
//! keeps those lines (BENCHMARKS.md, "Memory under a burst").

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_config::MEMORY_LIMIT_MIB;
use sync_core::ingest::limits::DEFAULT_KIND;
use sync_testkit::burst::{burst, BurstReport, ProcMemory};
use sync_testkit::harness::{sync_env, Clients, FunctionProcess, Topology};
use sync_testkit::raw_event::now_timestamp;
use sync_testkit::{drain, poll_until, CapturedRequest, Emulators, TEST_PROJECT};

/// Events too large for an entity: dead-lettered by the sync function.
const LARGE: usize = 60;
/// Bytes of data of each large event's one field: with the event around it,
/// about 9.5 MB of message data (Pub/Sub takes 10 MB).
const LARGE_FIELD_BYTES: usize = 9_500_000;
/// Legal events.
const LEGAL: usize = 20;
/// Bytes of each legal event's field: under Datastore's 1,048,572-byte entity.
const LEGAL_FIELD_BYTES: usize = 900_000;
/// Every push must have its final answer within this.
const BURST_DEADLINE: Duration = Duration::from_secs(600);

/// A variable of `deploy/lib.sh` after `init_config`: what `deploy/` gives
/// the services.
fn deployed(name: &str) -> Result<u64> {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/lib.sh");
    let script = format!(". '{lib}'; PROJECT_ID=memory-check init_config; printf '%s' \"${name}\"");
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .context("running bash")?;
    ensure!(
        out.status.success(),
        "deploy/lib.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    text.trim()
        .parse()
        .with_context(|| format!("deploy/lib.sh: {name}={text:?} is not a number"))
}

/// The burst's events, each its message id and data; built again from the
/// index when a test compares, so the test holds only what is in flight.
#[derive(Debug, Clone)]
struct Events {
    prefix: String,
    timestamp: String,
}

impl Events {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            timestamp: now_timestamp(),
        }
    }

    fn is_large(i: usize) -> bool {
        i < LARGE
    }

    fn count() -> usize {
        LARGE + LEGAL
    }

    fn message_id(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn entity_id(&self, i: usize) -> String {
        format!("{}-entity-{i}", self.prefix)
    }

    /// The length of event `i`'s one field.
    fn field_bytes(i: usize) -> usize {
        if Self::is_large(i) {
            LARGE_FIELD_BYTES
        } else {
            LEGAL_FIELD_BYTES
        }
    }

    /// The field's value: text that differs per event.
    fn blob(i: usize) -> String {
        let len = Self::field_bytes(i);
        let unit = format!("event {i:03} ");
        let mut s = unit.repeat(len / unit.len() + 1);
        s.truncate(len);
        s
    }

    /// The event's JSON, written out directly: serde would take seconds per
    /// event in a debug build (the blob needs no escaping).
    fn data(&self, i: usize) -> Vec<u8> {
        format!(
            r#"{{"entity_id":"{}","operation":"update","timestamp":"{}","source":"memory-test","data":{{"blob":"{}"}}}}"#,
            self.entity_id(i),
            self.timestamp,
            Self::blob(i)
        )
        .into_bytes()
    }

    /// The push of event `i`, as Pub/Sub wraps it for `subscription`.
    fn push(&self, i: usize, subscription: &str) -> CapturedRequest {
        let data = base64::engine::general_purpose::STANDARD.encode(self.data(i));
        let body = format!(
            r#"{{"message":{{"data":"{data}","messageId":"{}"}},"subscription":"projects/{TEST_PROJECT}/subscriptions/{subscription}"}}"#,
            self.message_id(i)
        );
        CapturedRequest::post(&[("content-type", "application/json")], body.into_bytes())
    }
}

/// What one delivery alone holds at its peak, per byte of its body: the
/// rise of the process's peak resident memory over what it held before.
#[derive(Debug, Clone, Copy)]
struct Single {
    legal: f64,
    large: f64,
}

/// Sends the probe's legal event, then its large one, one at a time, each
/// once acked, to the idle function at `url` (process `pid`).
async fn single_deliveries(
    url: &str,
    pid: u32,
    probe: &Events,
    subscription: &str,
) -> Result<Single> {
    let mut per_byte = Vec::new();
    for i in [LARGE, 0] {
        let request = probe.push(i, subscription);
        let before = ProcMemory::of(pid)?;
        let status = sync_testkit::post(url, &request).await?;
        ensure!(status == 204, "probe event {i}: {status}");
        let after = ProcMemory::of(pid)?;
        let held = after.peak_kib.saturating_sub(before.rss_kib) * 1024;
        #[allow(clippy::cast_precision_loss)] // far below 2^52
        per_byte.push(held as f64 / request.body.len() as f64);
    }
    Ok(Single {
        legal: per_byte[0],
        large: per_byte[1],
    })
}

/// One JSON line for the benchmark, and the same figures for the test log.
fn report(
    function: &str,
    limit_mib: u64,
    idle: ProcMemory,
    single: Single,
    after: ProcMemory,
    burst: &BurstReport,
) {
    let sent: usize = (0..Events::count()).map(Events::field_bytes).sum();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let line = json!({
        "item": "burst",
        "case": function,
        "limit_mib": limit_mib,
        "pushes": Events::count(),
        "field_data_mib": round(mib(sent)),
        "idle_rss_mib": round(idle.rss_mib()),
        "one_legal_peak_per_body_byte": round(single.legal),
        "one_large_peak_per_body_byte": round(single.large),
        "peak_rss_mib": round(after.peak_mib()),
        "rss_after_mib": round(after.rss_mib()),
        "redelivered": burst.redeliveries(),
        "redelivered_by_status": burst.redelivered,
        "elapsed_s": round(burst.elapsed.as_secs_f64()),
    });
    println!("{line}");
}

#[allow(clippy::cast_precision_loss)] // far below 2^52
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Removes a file when dropped, whatever the test's outcome.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The peak must stay within the limit the function was given.
fn check_peak(function: &str, limit_mib: u64, after: ProcMemory) -> Result<()> {
    ensure!(
        after.peak_kib <= limit_mib * 1024,
        "{function}: peak RSS {:.1} MiB is over its {limit_mib} MiB limit",
        after.peak_mib()
    );
    Ok(())
}

/// Every push acked (after any redeliveries for load).
fn check_all_acked(function: &str, burst: &BurstReport, log: &str) -> Result<()> {
    let not_acked = burst.not_acked();
    ensure!(
        not_acked.is_empty(),
        "{function}: pushes not acked (index, status): {not_acked:?}; log tail:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn the_sync_function_stays_within_its_memory_under_a_burst_of_the_largest_deliveries(
) -> Result<()> {
    let limit_mib = deployed("SYNC_MEMORY_MIB")?;
    let concurrency = usize::try_from(deployed("SYNC_CONCURRENCY")?)?;
    ensure!(
        concurrency == Events::count(),
        "the burst is {} pushes, the deployed concurrency {concurrency}",
        Events::count()
    );
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("memory");
    t.create_base(&c.admin).await?;
    let mut env = sync_env(&t, &e);
    env.push((MEMORY_LIMIT_MIB.to_string(), limit_mib.to_string()));
    let sync = FunctionProcess::start("sync-function", env).await?;
    let pid = sync.pid().context("the sync function runs")?;
    let idle = ProcMemory::of(pid)?;
    let probe = Events::new(&format!("{}-probe", t.prefix));
    let single = single_deliveries(&sync.url(), pid, &probe, &t.sync_subscription).await?;

    let events = Events::new(&t.prefix);
    let (pushes, subscription) = (events.clone(), t.sync_subscription.clone());
    let result = burst(
        &sync.url(),
        Events::count(),
        move |i| pushes.push(i, &subscription),
        BURST_DEADLINE,
    )
    .await
    .with_context(|| format!("sync function log:\n{}", sync.log_tail(40)))?;
    let after = ProcMemory::of(pid)?;
    report("sync-function", limit_mib, idle, single, after, &result);
    check_all_acked("sync-function", &result, &sync.log_tail(40))?;
    check_peak("sync-function", limit_mib, after)?;

    // Every too-large event is dead-lettered once, exactly as sent, and
    // nothing else is (the probe's large event too). A few at a time: each
    // is ~9.5 MB.
    let mut dead: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let end = Instant::now() + Duration::from_secs(120);
    while dead.len() < LARGE + 1 {
        ensure!(
            Instant::now() < end,
            "{} of {LARGE} dead letters after 120 s",
            dead.len()
        );
        let batch = c
            .puller
            .pull(&t.dlq_subscription, 4, Duration::from_secs(1))
            .await?;
        for m in batch {
            c.puller
                .ack(&t.dlq_subscription, std::slice::from_ref(&m.ack_id))
                .await?;
            let original = m
                .attributes
                .get("original_message_id")
                .cloned()
                .context("a dead letter of the function")?;
            let code = m.attributes.get("error_code").cloned().unwrap_or_default();
            ensure!(
                dead.insert(original.clone(), (code, m.data)).is_none(),
                "{original} dead-lettered twice"
            );
        }
    }
    let more = drain(&c.puller, &t.dlq_subscription, Duration::from_secs(2)).await?;
    ensure!(more.is_empty(), "{} more dead letters", more.len());
    let want: BTreeSet<String> = (0..LARGE)
        .map(|i| events.message_id(i))
        .chain([probe.message_id(0)])
        .collect();
    let got: BTreeSet<String> = dead.keys().cloned().collect();
    ensure!(got == want, "dead-lettered: {got:?}");
    for i in 0..LARGE {
        let (code, data) = &dead[&events.message_id(i)];
        ensure!(code == "entity_too_large", "event {i}: {code}");
        ensure!(
            *data == events.data(i),
            "event {i}: dead letter differs from what was sent"
        );
    }

    // Every legal event is applied, with its field as sent.
    let store = e.admin(&t.namespace).await?;
    let applied = poll_until(
        Duration::from_secs(60),
        "21 legal events applied",
        || async {
            let rows = store.query_kind(DEFAULT_KIND).await?;
            Ok((rows.len() > LEGAL).then_some(rows))
        },
    )
    .await?;
    let applied: BTreeMap<String, Value> = applied
        .into_iter()
        .map(|(name, fields)| (name, fields.get("blob").cloned().unwrap_or(Value::Null)))
        .collect();
    ensure!(applied.len() == LEGAL + 1, "{} entities", applied.len());
    ensure!(
        applied.contains_key(&probe.entity_id(LARGE)),
        "the probe's legal event applied"
    );
    for i in LARGE..Events::count() {
        let blob = applied
            .get(&events.entity_id(i))
            .with_context(|| format!("event {i} not applied"))?;
        ensure!(
            blob.as_str() == Some(Events::blob(i).as_str()),
            "event {i}: stored field differs"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_audit_function_stays_within_its_memory_under_a_burst_of_the_largest_deliveries(
) -> Result<()> {
    let limit_mib = deployed("AUDIT_MEMORY_MIB")?;
    let concurrency = usize::try_from(deployed("AUDIT_CONCURRENCY")?)?;
    ensure!(
        concurrency == Events::count(),
        "the burst is {} pushes, the deployed concurrency {concurrency}",
        Events::count()
    );
    let env = vec![
        ("LOG_FORMAT".to_string(), "text".to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
        (MEMORY_LIMIT_MIB.to_string(), limit_mib.to_string()),
    ];
    let audit = FunctionProcess::start("audit-function", env).await?;
    // Its log holds each snapshot in full: hundreds of MiB.
    let _remove_log = RemoveOnDrop(audit.log.clone());
    let pid = audit.pid().context("the audit function runs")?;
    let idle = ProcMemory::of(pid)?;
    let prefix = sync_testkit::unique_name("memory-audit");
    let probe = Events::new(&format!("{prefix}-probe"));
    let single = single_deliveries(&audit.url(), pid, &probe, "audit-logger").await?;

    let events = Arc::new(Events::new(&prefix));
    let pushes = Arc::clone(&events);
    let result = burst(
        &audit.url(),
        Events::count(),
        move |i| pushes.push(i, "audit-logger"),
        BURST_DEADLINE,
    )
    .await
    .with_context(|| format!("audit function log:\n{}", audit.log_tail(40)))?;
    let after = ProcMemory::of(pid)?;
    report("audit-function", limit_mib, idle, single, after, &result);
    check_all_acked("audit-function", &result, &audit.log_tail(40))?;
    check_peak("audit-function", limit_mib, after)?;

    // One audit entry for every delivery (a line naming its message id).
    let log = audit.log_text();
    let mut entries: BTreeMap<&str, usize> = BTreeMap::new();
    let key = "\"message_id\":\"";
    for line in log.lines().filter(|l| l.starts_with('{')) {
        if let Some(at) = line.find(key) {
            let rest = &line[at + key.len()..];
            let id = &rest[..rest.find('"').unwrap_or(rest.len())];
            *entries.entry(id).or_default() += 1;
        }
    }
    let ids = (0..Events::count())
        .map(|i| events.message_id(i))
        .chain([probe.message_id(LARGE), probe.message_id(0)]);
    for id in ids {
        let n = entries.get(id.as_str()).copied().unwrap_or(0);
        ensure!(n == 1, "{id}: {n} audit entries");
    }
    Ok(())
}

/// Both binaries run with glibc's mmap threshold fixed (what keeps resident
/// memory close to what requests hold): started without it, each has
/// re-executed itself with it, under the same process id; started with it
/// (an operator's value), each runs as started. Whether glibc applies it is
/// what the bursts above show (resident memory back near idle after them).
#[tokio::test]
async fn both_functions_run_with_the_allocator_threshold_set() -> Result<()> {
    use sync_http::allocator::{GLIBC_TUNABLES, REEXECUTED};
    let e = Emulators::shared().await?;
    let t = Topology::new("memory-env");
    for (tunables, reexecuted) in [
        ("", true),
        ("glibc.malloc.arena_max=4", true),
        ("glibc.malloc.mmap_threshold=262144", false),
    ] {
        for name in ["sync-function", "audit-function"] {
            let mut env = if name == "sync-function" {
                sync_env(&t, &e)
            } else {
                Vec::new()
            };
            env.push((GLIBC_TUNABLES.to_string(), tunables.to_string()));
            let f = FunctionProcess::start(name, env).await?;
            let pid = f.pid().context("it runs")?;
            let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
            let marked = environ
                .split(|&b| b == 0)
                .any(|var| var == format!("{REEXECUTED}=1").as_bytes());
            ensure!(
                marked == reexecuted,
                "{name} started with {GLIBC_TUNABLES}={tunables:?}: re-executed {marked}, want {reexecuted}"
            );
        }
    }
    Ok(())
}
