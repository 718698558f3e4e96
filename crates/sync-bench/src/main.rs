//! `sync-bench`: the measuring parts of `scripts/bench.sh` (see BENCHMARKS.md).
//!
//! The script starts and stops everything and drives the load; this binary
//! does what is awkward in shell: the in-memory server for the HTTP layer
//! alone ([`serve`]), push bodies for wrk that are all different
//! ([`mod@pieces`]), the Datastore emulator's own limit through `sync-store`
//! ([`limit`]), cold start to the millisecond ([`coldstart`]), following the
//! sync function's log through an end-to-end run ([`logs`]), and the report
//! ([`report`]). Every measuring subcommand prints one JSON object per run
//! (`item`, `case`, `run` and the metrics BENCHMARKS.md quotes), which the
//! script appends to a JSON-lines file that `report` reads.
//!
//! Loopback only: it talks to the emulators and the processes the script
//! started, and every loop is bounded in time.

mod batch_delay;
mod coldstart;
mod compare;
mod cost;
mod gc;
mod limit;
mod logs;
mod pieces;
mod probe;
mod proc;
mod report;
mod rpcproxy;
mod serve;
mod stats;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Benchmark helpers for scripts/bench.sh.
#[derive(Parser, Debug)]
#[command(name = "sync-bench", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the Lua data file scripts/bench/push.lua builds push bodies from.
    Pieces(PiecesArgs),
    /// Measure the Datastore emulator's limit: the store's transaction per event.
    Limit(LimitArgs),
    /// Measure cold start (spawn → first 200 on /healthz) and idle RSS.
    ColdStart(ColdStartArgs),
    /// Follow the sync function's JSON log through an end-to-end run.
    E2eFollow(FollowArgs),
    /// Serve push endpoints that answer slowly and count pushes in flight per path.
    PushProbe(ProbeArgs),
    /// Turn the JSON line push.lua prints at the end of a wrk run (stdin) into
    /// a result, with the CPU and the counters that changed over the run per event.
    WrkRecord(WrkRecordArgs),
    /// Print a process's CPU time so far (user + system), in clock ticks.
    CpuTicks {
        /// The process.
        #[arg(long)]
        pid: u32,
    },
    /// Measure the first event after `/healthz` first answers 200 against
    /// the steady state of the same process.
    FirstEvent(FirstEventArgs),
    /// Relay gRPC to emulators on loopback ports, counting calls and request
    /// bytes per route, optionally each request late; serve the counts on a
    /// control port. Runs until killed.
    RpcProxy(RpcProxyArgs),
    /// Measure publish RPCs, latency and throughput per batching delay on
    /// the Pub/Sub emulator (`PUBSUB_EMULATOR_HOST`); prints a Markdown table.
    BatchDelay(BatchDelayArgs),
    /// Read criterion's estimate of one benchmark.
    Criterion(CriterionArgs),
    /// Summarise a JVM GC log (`-Xlog:gc`): pauses and heap.
    Gc(GcArgs),
    /// Print a result made of the given fields.
    Record(Label),
    /// Group the results, print the table and the targets, write the JSON file.
    Report(ReportArgs),
    /// Serve the sync function's router on in-memory ports (the HTTP layer
    /// alone), configured from the environment as the function is.
    ServeMemory,
}

/// What a result is about.
#[derive(Args, Debug, Clone)]
struct Label {
    /// Measurement: core, http, limit, push, e2e, e2e_paced, cold_start, memory, size, growth, gc.
    #[arg(long)]
    item: String,
    /// Case within it (e.g. `c=64`).
    #[arg(long)]
    case: String,
    /// Run number.
    #[arg(long, default_value_t = 1)]
    run: u32,
    /// Extra numeric fields, `NAME=NUMBER`, repeatable.
    #[arg(long = "field", value_name = "NAME=NUMBER")]
    fields: Vec<String>,
}

impl Label {
    fn object(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        m.insert("item".into(), json!(self.item));
        m.insert("case".into(), json!(self.case));
        m.insert("run".into(), json!(self.run));
        for f in &self.fields {
            let (k, v) = f
                .split_once('=')
                .with_context(|| format!("--field {f:?}: expected NAME=NUMBER"))?;
            let n: f64 = v
                .parse()
                .with_context(|| format!("--field {f:?}: {v:?} is not a number"))?;
            m.insert(k.to_string(), json!(n));
        }
        Ok(m)
    }

    /// Prints the label and `metrics` (a JSON object) as one line.
    fn print(&self, metrics: Value) -> Result<()> {
        let mut m = self.object()?;
        if let Value::Object(metrics) = metrics {
            m.extend(metrics);
        }
        println!("{}", Value::Object(m));
        Ok(())
    }
}

#[derive(Args, Debug)]
struct PiecesArgs {
    /// Lua file to write.
    #[arg(long)]
    out: PathBuf,
    /// Distinct entities, taken in turn.
    #[arg(long, default_value_t = 1000)]
    entities: usize,
    /// Prefix of entity ids.
    #[arg(long)]
    entity_prefix: String,
    /// Bytes of the `description` field (0: none).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Project in the envelope's subscription path.
    #[arg(long, default_value = "datastore-sync-bench")]
    project: String,
    /// Also print the body of request 0 (what wrk sends first) to stdout.
    #[arg(long)]
    print_sample: bool,
    /// Creates and deletes among the updates (pieces.rs's mix).
    #[arg(long)]
    mix: bool,
}

#[derive(Args, Debug)]
struct LimitArgs {
    #[command(flatten)]
    label: Label,
    /// Namespace (the emulator and project come from
    /// `DATASTORE_EMULATOR_HOST` and `GOOGLE_CLOUD_PROJECT`).
    #[arg(long, default_value = "bench_limit")]
    namespace: String,
    /// Prefix of entity ids.
    #[arg(long, default_value = "limit")]
    entity_prefix: String,
    /// Entities, drawn uniformly.
    #[arg(long)]
    entities: usize,
    /// Transactions in flight.
    #[arg(long)]
    concurrency: usize,
    /// Unmeasured warm-up, seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup_s: f64,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 3.0)]
    duration_s: f64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Debug)]
struct ColdStartArgs {
    /// Case label (e.g. the binary's name).
    #[arg(long)]
    case: String,
    /// The binary.
    #[arg(long)]
    bin: PathBuf,
    /// Starts.
    #[arg(long, default_value_t = 10)]
    runs: u32,
    /// Environment, `KEY=VALUE`, repeatable (PORT is set here).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
}

#[derive(Args, Debug)]
struct WrkRecordArgs {
    #[command(flatten)]
    label: Label,
    /// CPU clock ticks the measured process used over the run (see
    /// `cpu-ticks`): recorded as `cpu_ms_per_event`.
    #[arg(long)]
    cpu_ticks: Option<u64>,
    /// Counters read before and after the run, `PREFIX=BEFORE.json=AFTER.json`,
    /// repeatable: every number that is in both (nested objects flattened
    /// with `_`) is recorded per request as `PREFIX_NAME_per_event`.
    #[arg(long = "delta", value_name = "PREFIX=BEFORE=AFTER")]
    deltas: Vec<String>,
    /// A total over the run, `NAME=NUMBER`, repeatable: recorded per
    /// request as `NAME_per_event`.
    #[arg(long = "per-event", value_name = "NAME=NUMBER")]
    per_event: Vec<String>,
}

#[derive(Args, Debug)]
struct FirstEventArgs {
    #[command(flatten)]
    label: Label,
    /// The sync function's binary.
    #[arg(long)]
    bin: PathBuf,
    /// Starts.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Pushes after the first, one after another (the steady state).
    #[arg(long, default_value_t = 20)]
    steady: usize,
    /// Prefix of entity ids (each start uses its own).
    #[arg(long, default_value = "first")]
    entity_prefix: String,
    /// Project in the envelope's subscription path.
    #[arg(long, default_value = "datastore-sync-bench")]
    project: String,
    /// Environment, `KEY=VALUE`, repeatable (PORT is set here).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
}

#[derive(Args, Debug)]
struct RpcProxyArgs {
    /// `NAME=LISTEN_PORT=HOST:PORT`, repeatable.
    #[arg(
        long = "route",
        value_name = "NAME=LISTEN_PORT=HOST:PORT",
        required = true
    )]
    routes: Vec<rpcproxy::Route>,
    /// Port (127.0.0.1) that answers any request with the counts as JSON.
    #[arg(long)]
    control_port: u16,
    /// Hold every chunk a client sends this long before relaying it (a
    /// round trip to a distant Datastore), ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[derive(Args, Debug)]
struct BatchDelayArgs {
    /// Announcements per run.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Concurrent publishing tasks, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<u64>,
    /// Batching delays in ms, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,5,10")]
    delays_ms: Vec<u64>,
    /// Mean pause before each publish (the request's Datastore work), ms.
    #[arg(long, default_value_t = 10)]
    work_ms: u64,
    /// Ordering keys: `off`, `on` or both, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "off,on")]
    keys: Vec<String>,
}

#[derive(Args, Debug)]
struct FollowArgs {
    #[command(flatten)]
    label: Label,
    /// The sync function's stdout (LOG_FORMAT=json).
    #[arg(long)]
    log: PathBuf,
    /// Distinct messages to wait for.
    #[arg(long)]
    expect: usize,
    /// Unix time in ms when the load started.
    #[arg(long)]
    start_ms: i64,
    /// The function's pid (samples memory).
    #[arg(long)]
    pid: Option<u32>,
    /// VmRSS before the load, KiB (recorded as is).
    #[arg(long)]
    rss_idle_kib: Option<u64>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Measure a process's CPU time over the run: `NAME=pid:N` or
    /// `NAME=pgid:N` (a whole process group), repeatable.
    #[arg(long = "cpu", value_name = "NAME=pid:N|pgid:N")]
    cpu: Vec<String>,
}

#[derive(Args, Debug)]
struct ProbeArgs {
    #[command(flatten)]
    label: Label,
    /// Port to listen on (127.0.0.1).
    #[arg(long)]
    port: u16,
    /// Stop after this many answered requests (all paths together).
    #[arg(long)]
    expect: usize,
}

#[derive(Args, Debug)]
struct GcArgs {
    #[command(flatten)]
    label: Label,
    /// The GC log.
    #[arg(long)]
    log: PathBuf,
}

#[derive(Args, Debug)]
struct CriterionArgs {
    #[command(flatten)]
    label: Label,
    /// Criterion's output directory.
    #[arg(long)]
    dir: PathBuf,
    /// Benchmark name.
    #[arg(long)]
    name: String,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// JSON-lines results.
    #[arg(long)]
    raw: PathBuf,
    /// JSON file to write.
    #[arg(long)]
    out: PathBuf,
    /// Facts about the run, `KEY=VALUE`, repeatable (kept as text).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// Pushes the Pub/Sub emulator keeps in flight per subscription (what
    /// the probe measured): the end-to-end rate is compared with the
    /// emulator's limit at this concurrency.
    #[arg(long, default_value_t = 2.0)]
    push_concurrency: f64,
}

/// Timestamps of push bodies start this many minutes ago (a whole minute); a
/// run's `BENCH_OFFSET_US` must stay below it, or events would be in the future.
const BASE_MINUTES_AGO: i64 = 100;

/// The pieces for `entities` entities named `PREFIX-NNNNN`, based
/// [`BASE_MINUTES_AGO`] minutes ago.
fn build_pieces(
    entities: usize,
    prefix: &str,
    payload_bytes: usize,
    project: &str,
    mix: bool,
) -> Result<pieces::Pieces> {
    let now = chrono::Utc::now() - chrono::Duration::minutes(BASE_MINUTES_AGO);
    let base = chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::minutes(1))
        .context("rounding the base time")?;
    pieces::build(&pieces::Spec {
        entities,
        entity_prefix: prefix.to_string(),
        payload_bytes,
        project: project.to_string(),
        subscription: "sync-processor".into(),
        base,
        mix,
    })
}

fn pieces(a: &PiecesArgs) -> Result<()> {
    let p = build_pieces(
        a.entities,
        &a.entity_prefix,
        a.payload_bytes,
        &a.project,
        a.mix,
    )?;
    std::fs::write(&a.out, pieces::to_lua(&p)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if a.print_sample {
        println!(
            "{}",
            pieces::body(&p, 0, 0, "sample").context("building the sample body")?
        );
    }
    Ok(())
}

fn secs_since(ms: Option<i64>, start_ms: i64) -> Option<f64> {
    ms.map(|t| (t - start_ms) as f64 / 1000.0)
}

async fn limit_cmd(a: &LimitArgs) -> Result<()> {
    let outcome = limit::run(limit::Settings {
        namespace: a.namespace.clone(),
        entity_prefix: a.entity_prefix.clone(),
        entities: a.entities,
        concurrency: a.concurrency,
        warmup: Duration::from_secs_f64(a.warmup_s),
        duration: Duration::from_secs_f64(a.duration_s),
        seed: a.seed,
    })
    .await?;
    let (p50, p99) = stats::p50_p99(&mut outcome.latencies_ms.clone());
    a.label.print(json!({
        "entities": a.entities,
        "concurrency": a.concurrency,
        "events_per_s": outcome.events as f64 / outcome.elapsed_s.max(1e-9),
        "aborted": outcome.aborted,
        "failed": outcome.failed,
        "p50_ms": p50,
        "p99_ms": p99,
    }))
}

/// `KEY=VALUE` arguments as pairs.
fn env_pairs(env: &[String]) -> Result<Vec<(String, String)>> {
    env.iter()
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {e:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn cold_start(a: &ColdStartArgs) -> Result<()> {
    let env = env_pairs(&a.env)?;
    for run in 1..=a.runs {
        // Idle RSS is read once, a second after the last start.
        let settle = (run == a.runs).then(|| Duration::from_secs(1));
        let start = coldstart::start_once(&a.bin, &env, Duration::from_secs(30), settle)?;
        let label = Label {
            item: "cold_start".into(),
            case: a.case.clone(),
            run,
            fields: Vec::new(),
        };
        label.print(json!({"cold_start_ms": start.ms, "idle_rss_kib": start.idle_rss_kib}))?;
    }
    Ok(())
}

fn follow(a: &FollowArgs) -> Result<bool> {
    let cpu = a
        .cpu
        .iter()
        .map(|c| {
            let (name, of) = c
                .split_once('=')
                .with_context(|| format!("--cpu {c:?}: expected NAME=pid:N or NAME=pgid:N"))?;
            let of: proc::CpuOf = of.parse().map_err(anyhow::Error::msg)?;
            Ok((name.to_string(), of))
        })
        .collect::<Result<Vec<_>>>()?;
    let s = logs::follow(&logs::Follow {
        log: a.log.clone(),
        expect: a.expect,
        pid: a.pid,
        timeout: Duration::from_secs(a.timeout_s),
        cpu,
    })?;
    let (p50, p99) = s.latency();
    let mut m = json!({
        "events": s.distinct,
        "complete": s.complete,
        "events_per_s": s.events_per_s(a.start_ms),
        "steady_events_per_s": s.steady_events_per_s(),
        "first_event_s": secs_since(s.first_ms, a.start_ms),
        "p50_ms": p50,
        "p99_ms": p99,
        "retries": s.retries,
        "rss_idle_kib": a.rss_idle_kib,
        "rss_peak_kib": s.rss_peak_kib,
        "machine_busy_pct": s.machine_busy_pct,
    });
    // CPU milliseconds per event, per process: what the run cost whom.
    for (name, secs) in &s.cpu_s {
        m[format!("cpu_ms_per_event_{name}")] = json!(secs * 1000.0 / s.distinct.max(1) as f64);
    }
    a.label.print(m)?;
    Ok(s.complete)
}

fn push_probe(a: &ProbeArgs) -> Result<()> {
    let stats = probe::run(
        probe::bind(a.port)?,
        Duration::from_millis(25),
        a.expect,
        Duration::from_secs(60),
    )?;
    let answered: usize = stats.values().map(|s| s.answered).sum();
    a.label.print(json!({
        "max_in_flight": stats.values().map(|s| s.max).max().unwrap_or(0),
        "answered": answered,
        "complete": answered >= a.expect,
    }))
}

fn first_event(a: &FirstEventArgs) -> Result<()> {
    let env = env_pairs(&a.env)?;
    for run in 1..=a.runs {
        let p = build_pieces(
            a.steady + 1,
            &format!("{}-{}-r{run}", a.entity_prefix, std::process::id()),
            0,
            &a.project,
            false,
        )?;
        let bodies = (0..=a.steady as u64)
            .map(|k| pieces::body(&p, k, 0, &format!("first-r{run}")))
            .collect::<Option<Vec<_>>>()
            .context("building the push bodies")?;
        let f = coldstart::first_event(&a.bin, &env, &bodies, Duration::from_secs(30))?;
        let label = Label {
            run,
            ..a.label.clone()
        };
        label.print(json!({
            "ready_ms": f.ready_ms,
            "first_ms": f.first_ms,
            "steady_p50_ms": f.steady_p50_ms,
            "first_over_p50": f.first_ms / f.steady_p50_ms,
            "first_ok": f64::from(u8::from(f.first_ok)),
        }))?;
    }
    Ok(())
}

/// Every number in `v`, nested objects flattened as `a_b`.
fn numbers(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Number(_) => {
            out.insert(prefix.to_string(), v.clone());
        }
        Value::Object(m) => {
            for (k, v) in m {
                numbers(&format!("{prefix}_{k}"), v, out);
            }
        }
        _ => {}
    }
}

/// `PREFIX_NAME_per_event` for every number in both `before` and `after`.
fn deltas(prefix: &str, before: &Value, after: &Value, requests: f64) -> Map<String, Value> {
    let (mut b, mut a) = (Map::new(), Map::new());
    numbers(prefix, before, &mut b);
    numbers(prefix, after, &mut a);
    a.iter()
        .filter_map(|(k, v)| {
            let d = v.as_f64()? - b.get(k)?.as_f64()?;
            Some((format!("{k}_per_event"), json!(d / requests.max(1.0))))
        })
        .collect()
}

fn read_json(path: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
}

fn wrk_record(a: &WrkRecordArgs) -> Result<()> {
    let label = &a.label;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let Some(line) = input
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
    else {
        bail!("no JSON line from push.lua in wrk's output:\n{input}");
    };
    let w: Value = serde_json::from_str(line).context("push.lua's JSON line")?;
    let n = |k: &str| w.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let requests = n("requests");
    let mut fields = Map::new();
    fields.insert("requests".into(), json!(requests));
    fields.insert(
        "events_per_s".into(),
        json!(requests / (n("duration_us") / 1e6).max(1e-9)),
    );
    fields.insert("p50_ms".into(), json!(n("latency_p50_us") / 1000.0));
    fields.insert("p99_ms".into(), json!(n("latency_p99_us") / 1000.0));
    fields.insert("status_errors".into(), json!(n("status_errors")));
    if let Some(ticks) = a.cpu_ticks {
        let cpu_ms = ticks as f64 / proc::ticks_per_second() * 1000.0;
        fields.insert("cpu_ms_per_event".into(), json!(cpu_ms / requests.max(1.0)));
    }
    for t in &a.per_event {
        let parsed = t
            .split_once('=')
            .and_then(|(k, v)| Some((k, v.parse::<f64>().ok()?)));
        let Some((name, total)) = parsed else {
            bail!("--per-event {t:?}: expected NAME=NUMBER");
        };
        fields.insert(
            format!("{name}_per_event"),
            json!(total / requests.max(1.0)),
        );
    }
    for d in &a.deltas {
        let mut parts = d.splitn(3, '=');
        let (Some(prefix), Some(before), Some(after)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("--delta {d:?}: expected PREFIX=BEFORE=AFTER");
        };
        fields.extend(deltas(
            prefix,
            &read_json(before)?,
            &read_json(after)?,
            requests,
        ));
    }
    // The average group: events per transaction (commit or rollback).
    let per = |k: &str| fields.get(k).and_then(Value::as_f64);
    if let (Some(c), Some(r)) = (
        per("fn_datastore_commit_per_event"),
        per("fn_datastore_rollback_per_event"),
    ) {
        if c + r > 0.0 {
            fields.insert("events_per_transaction".into(), json!(1.0 / (c + r)));
        }
    }
    label.print(Value::Object(fields))
}

fn gc_cmd(a: &GcArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&a.log).with_context(|| format!("reading {}", a.log.display()))?;
    let p = gc::parse(&text);
    a.label.print(json!({
        "pauses": p.count,
        "pause_total_ms": p.total_ms,
        "pause_max_ms": p.max_ms,
        "heap_max_mib": p.max_heap_mib,
    }))
}

fn criterion(a: &CriterionArgs) -> Result<()> {
    let path = a.dir.join(&a.name).join("new").join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    let median_ns = v["median"]["point_estimate"]
        .as_f64()
        .context("no median in criterion's estimates")?;
    a.label.print(json!({"us_per_event": median_ns / 1000.0}))
}

fn report_cmd(a: &ReportArgs) -> Result<()> {
    let raw =
        std::fs::read_to_string(&a.raw).with_context(|| format!("reading {}", a.raw.display()))?;
    let cases = report::group(&raw)?;
    let push_concurrency = a.push_concurrency;
    let mut meta = Map::new();
    for m in &a.meta {
        let (k, v) = m
            .split_once('=')
            .with_context(|| format!("--meta {m:?}: expected KEY=VALUE"))?;
        meta.insert(k.to_string(), json!(v));
    }
    let doc = report::document(&cases, push_concurrency, meta);
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", a.out.display()))?;
    let machine = &doc["machine"];
    println!(
        "Machine: {} cores ({}), {} GiB memory\n",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["memory_gib"]
    );
    println!("{}", report::table(&cases, push_concurrency));
    if compare::present(&cases) {
        let baseline = doc["meta"]["baseline"].as_str().unwrap_or("baseline");
        println!("{}", compare::table(&cases, baseline));
        println!("{}", cost::table(&cases));
    }
    println!(
        "{}",
        report::targets_table(&report::targets(&cases, push_concurrency))
    );
    println!("JSON: {}", a.out.display());
    Ok(())
}

/// Runs `f` on a multi-threaded runtime (the limit's workers, the server).
fn batch_delay_cmd(a: &BatchDelayArgs) -> Result<()> {
    let keys = a
        .keys
        .iter()
        .map(|k| match k.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(anyhow::anyhow!("--keys {k:?}: expected off or on")),
        })
        .collect::<Result<_>>()?;
    block_on(batch_delay::run(&batch_delay::Plan {
        events: a.events,
        concurrency: a.concurrency.clone(),
        delays_ms: a.delays_ms.clone(),
        work_ms: a.work_ms,
        keys,
    }))
}

fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Pieces(a) => pieces(a),
        Command::Limit(a) => block_on(limit_cmd(a)),
        Command::ColdStart(a) => cold_start(a),
        Command::E2eFollow(a) => match follow(a) {
            Ok(true) => Ok(()),
            Ok(false) => Err(anyhow::anyhow!(
                "not every event was processed within {} s",
                a.timeout_s
            )),
            Err(e) => Err(e),
        },
        Command::PushProbe(a) => push_probe(a),
        Command::WrkRecord(a) => wrk_record(a),
        Command::CpuTicks { pid } => {
            println!("{}", proc::cpu_ticks(proc::CpuOf::Pid(*pid)));
            Ok(())
        }
        Command::FirstEvent(a) => first_event(a),
        Command::RpcProxy(a) => block_on(rpcproxy::serve(
            &a.routes,
            a.control_port,
            Duration::from_millis(a.delay_ms),
        )),
        Command::BatchDelay(a) => batch_delay_cmd(a),
        Command::Criterion(a) => criterion(a),
        Command::Gc(a) => gc_cmd(a),
        Command::Record(l) => l.print(json!({})),
        Command::Report(a) => report_cmd(a),
        Command::ServeMemory => block_on(serve::run()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
