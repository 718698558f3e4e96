//! `sync-bench`: the measuring parts of `scripts/bench.sh` (see BENCHMARKS.md).
//!
//! The script starts and stops everything and drives the load; this binary
//! does what is awkward in shell: push bodies for wrk that are all different
//! ([`mod@pieces`]), the Datastore emulator's own limit with a minimal client
//! ([`limit`]), cold start to the millisecond ([`coldstart`]), following the
//! sync function's log through an end-to-end run ([`logs`]), and the report
//! ([`report`]). Every measuring subcommand prints one JSON object per run
//! (`item`, `case`, `run` and the metrics), which the script appends to a
//! JSON-lines file that `report` reads.
//!
//! Loopback only: it talks to the emulator and the processes the script
//! started, and every loop is bounded in time.

mod coldstart;
mod gc;
mod limit;
mod logs;
mod pieces;
mod probe;
mod proc;
mod report;
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
    /// Measure the Datastore emulator's limit: one read-write transaction per event.
    Limit(LimitArgs),
    /// Measure cold start (spawn → first 200 on /healthz) and idle RSS.
    ColdStart(ColdStartArgs),
    /// Follow the sync function's JSON log through an end-to-end run.
    E2eFollow(FollowArgs),
    /// Serve push endpoints that answer slowly and count pushes in flight per path.
    PushProbe(ProbeArgs),
    /// Turn the JSON line push.lua prints at the end of a wrk run (stdin) into a result.
    WrkRecord(WrkArgs),
    /// Read criterion's estimate of one benchmark.
    Criterion(CriterionArgs),
    /// Summarise a JVM GC log (`-Xlog:gc`): pauses and heap.
    Gc(GcArgs),
    /// Print a result made of the given fields.
    Record(Label),
    /// Group the results, print the table and the targets, write the JSON file.
    Report(ReportArgs),
}

/// What a result is about.
#[derive(Args, Debug, Clone)]
struct Label {
    /// Measurement: core, http, limit, e2e, cold_start, size, growth.
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

    fn print(&self, metrics: Map<String, Value>) -> Result<()> {
        let mut m = self.object()?;
        m.extend(metrics);
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
    /// Subscription id in the envelope.
    #[arg(long, default_value = "sync-processor")]
    subscription: String,
    /// Timestamps start this many minutes ago (whole minute); a run's
    /// BENCH_OFFSET_US must stay below it, or events would be in the future.
    #[arg(long, default_value_t = 100)]
    base_minutes_ago: i64,
    /// Also print the body of request 0 (what wrk sends first) to stdout.
    #[arg(long)]
    print_sample: bool,
}

#[derive(Args, Debug)]
struct LimitArgs {
    #[command(flatten)]
    label: Label,
    /// Emulator host:port (default: $DATASTORE_EMULATOR_HOST).
    #[arg(long, env = "DATASTORE_EMULATOR_HOST")]
    host: String,
    /// Project id.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    /// Namespace.
    #[arg(long, default_value = "bench_limit")]
    namespace: String,
    /// Kind.
    #[arg(long, default_value = "SyncEntity")]
    kind: String,
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
    /// Begin each transaction inside its lookup (`new_transaction`), saving
    /// the BeginTransaction round trip (the Datastore emulator supports it;
    /// the Firestore emulator in Datastore mode stalls such transactions).
    #[arg(long)]
    inline_begin: bool,
}

#[derive(Args, Debug)]
struct ColdStartArgs {
    /// Item label (`cold_start`).
    #[arg(long, default_value = "cold_start")]
    item: String,
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
    /// After the last start, idle this long and read VmRSS (0: do not).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Give up on a start after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
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
    /// The function's port (samples open push connections).
    #[arg(long)]
    port: Option<u16>,
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
    /// Delay before each answer, ms.
    #[arg(long, default_value_t = 25)]
    delay_ms: u64,
    /// Stop after this many answered requests (all paths together).
    #[arg(long)]
    expect: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

#[derive(Args, Debug)]
struct WrkArgs {
    #[command(flatten)]
    label: Label,
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
    #[arg(long, default_value = "target/criterion")]
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
    /// Pushes the Pub/Sub emulator keeps in flight per subscription, when
    /// no `push` result measured it: the end-to-end rate is compared with
    /// the emulator's limit at this concurrency.
    #[arg(long, default_value_t = 2.0)]
    push_concurrency: f64,
}

fn pieces(a: &PiecesArgs) -> Result<()> {
    let now = chrono::Utc::now() - chrono::Duration::minutes(a.base_minutes_ago);
    let base = chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::minutes(1))
        .context("rounding the base time")?;
    let p = pieces::build(&pieces::Spec {
        entities: a.entities,
        entity_prefix: a.entity_prefix.clone(),
        payload_bytes: a.payload_bytes,
        project: a.project.clone(),
        subscription: a.subscription.clone(),
        base,
    })?;
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

fn opt_json(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| json!(v))
}

async fn limit_cmd(a: &LimitArgs) -> Result<()> {
    let outcome = limit::run(limit::Settings {
        host: a.host.clone(),
        project: a.project.clone(),
        namespace: a.namespace.clone(),
        kind: a.kind.clone(),
        entity_prefix: a.entity_prefix.clone(),
        entities: a.entities,
        concurrency: a.concurrency,
        warmup: Duration::from_secs_f64(a.warmup_s),
        duration: Duration::from_secs_f64(a.duration_s),
        seed: a.seed,
        inline_begin: a.inline_begin,
    })
    .await?;
    let mut lat = outcome.latencies_ms.clone();
    let (p50, p99) = stats::p50_p99(&mut lat);
    let mut m = Map::new();
    m.insert("entities".into(), json!(a.entities));
    m.insert("concurrency".into(), json!(a.concurrency));
    m.insert("inline_begin".into(), json!(a.inline_begin));
    m.insert("events".into(), json!(outcome.events));
    m.insert("elapsed_s".into(), json!(outcome.elapsed_s));
    m.insert(
        "events_per_s".into(),
        json!(outcome.events as f64 / outcome.elapsed_s.max(1e-9)),
    );
    m.insert("aborted".into(), json!(outcome.aborted));
    m.insert("failed".into(), json!(outcome.failed));
    m.insert("p50_ms".into(), opt_json(p50));
    m.insert("p99_ms".into(), opt_json(p99));
    a.label.print(m)
}

fn cold_start(a: &ColdStartArgs) -> Result<()> {
    let env: Vec<(String, String)> = a
        .env
        .iter()
        .map(|e| {
            e.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {e:?}: expected KEY=VALUE"))
        })
        .collect::<Result<_>>()?;
    for run in 1..=a.runs {
        let settle = (run == a.runs && a.settle_ms > 0).then(|| Duration::from_millis(a.settle_ms));
        let start = coldstart::start_once(&a.bin, &env, Duration::from_secs(a.timeout_s), settle)?;
        let label = Label {
            item: a.item.clone(),
            case: a.case.clone(),
            run,
            fields: Vec::new(),
        };
        let mut m = Map::new();
        m.insert("cold_start_ms".into(), json!(start.ms));
        if let Some(k) = start.idle_rss_kib {
            m.insert("idle_rss_kib".into(), json!(k));
        }
        label.print(m)?;
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
        port: a.port,
        pid: a.pid,
        timeout: Duration::from_secs(a.timeout_s),
        cpu,
    })?;
    let (p50, p99) = s.latency();
    let mut m = Map::new();
    m.insert("events".into(), json!(s.distinct));
    m.insert("processed_lines".into(), json!(s.processed_lines));
    m.insert("complete".into(), json!(s.complete));
    m.insert(
        "elapsed_s".into(),
        opt_json(s.last_ms.map(|l| (l - a.start_ms) as f64 / 1000.0)),
    );
    m.insert("events_per_s".into(), opt_json(s.events_per_s(a.start_ms)));
    m.insert(
        "steady_events_per_s".into(),
        opt_json(s.steady_events_per_s()),
    );
    m.insert(
        "first_event_s".into(),
        opt_json(s.first_ms.map(|f| (f - a.start_ms) as f64 / 1000.0)),
    );
    m.insert("p50_ms".into(), opt_json(p50));
    m.insert("p99_ms".into(), opt_json(p99));
    m.insert("outcomes".into(), json!(s.outcomes));
    m.insert("retries".into(), json!(s.retries));
    m.insert("rejected".into(), json!(s.rejected));
    m.insert("push_conns_median".into(), opt_json(s.median_connections()));
    m.insert(
        "push_conns_max".into(),
        opt_json(s.connections.iter().copied().reduce(f64::max)),
    );
    m.insert("rss_idle_kib".into(), json!(a.rss_idle_kib));
    m.insert("rss_peak_kib".into(), json!(s.rss_peak_kib));
    // CPU seconds per 1,000 events, per process: what the run cost whom.
    for (name, secs) in &s.cpu_s {
        m.insert(
            format!("cpu_ms_per_event_{name}"),
            json!(secs * 1000.0 / s.distinct.max(1) as f64),
        );
    }
    m.insert("machine_busy_pct".into(), opt_json(s.machine_busy_pct));
    a.label.print(m)?;
    Ok(s.complete)
}

fn push_probe(a: &ProbeArgs) -> Result<()> {
    let stats = probe::run(
        probe::bind(a.port)?,
        Duration::from_millis(a.delay_ms),
        a.expect,
        Duration::from_secs(a.timeout_s),
    )?;
    let answered: usize = stats.values().map(|s| s.answered).sum();
    let mut m = Map::new();
    m.insert(
        "max_in_flight".into(),
        json!(stats.values().map(|s| s.max).max().unwrap_or(0)),
    );
    m.insert("answered".into(), json!(answered));
    m.insert("complete".into(), json!(answered >= a.expect));
    m.insert(
        "per_path".into(),
        json!(stats
            .iter()
            .map(|(p, s)| (
                p.clone(),
                json!({"max_in_flight": s.max, "answered": s.answered})
            ))
            .collect::<Map<String, Value>>()),
    );
    a.label.print(m)
}

fn wrk_record(a: &WrkArgs) -> Result<()> {
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
    let secs = n("duration_us") / 1e6;
    let mut m = Map::new();
    m.insert("requests".into(), json!(n("requests")));
    m.insert("duration_s".into(), json!(secs));
    m.insert("events_per_s".into(), json!(n("requests") / secs.max(1e-9)));
    m.insert("p50_ms".into(), json!(n("latency_p50_us") / 1000.0));
    m.insert("p99_ms".into(), json!(n("latency_p99_us") / 1000.0));
    m.insert("mean_ms".into(), json!(n("latency_mean_us") / 1000.0));
    m.insert("status_errors".into(), json!(n("status_errors")));
    m.insert(
        "socket_errors".into(),
        json!(n("connect_errors") + n("read_errors") + n("write_errors") + n("timeouts")),
    );
    a.label.print(m)
}

fn gc_cmd(a: &GcArgs) -> Result<()> {
    let text =
        std::fs::read_to_string(&a.log).with_context(|| format!("reading {}", a.log.display()))?;
    let p = gc::parse(&text);
    let mut m = Map::new();
    m.insert("pauses".into(), json!(p.count));
    m.insert("pause_total_ms".into(), json!(p.total_ms));
    m.insert("pause_max_ms".into(), json!(p.max_ms));
    m.insert("heap_max_mib".into(), json!(p.max_heap_mib));
    a.label.print(m)
}

fn criterion(a: &CriterionArgs) -> Result<()> {
    let path = a.dir.join(&a.name).join("new").join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    let point = |k: &str| {
        v.get(k)
            .and_then(|e| e.get("point_estimate"))
            .and_then(Value::as_f64)
    };
    let median_ns = point("median").context("no median in criterion's estimates")?;
    let mut m = Map::new();
    m.insert("us_per_event".into(), json!(median_ns / 1000.0));
    m.insert(
        "mean_us".into(),
        opt_json(point("mean").map(|ns| ns / 1000.0)),
    );
    a.label.print(m)
}

fn report_cmd(a: &ReportArgs) -> Result<()> {
    let raw =
        std::fs::read_to_string(&a.raw).with_context(|| format!("reading {}", a.raw.display()))?;
    let cases = report::group(&raw)?;
    let push_concurrency = report::measured_push_concurrency(&cases).unwrap_or(a.push_concurrency);
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
        "Machine: {} cores ({}), {} GiB memory",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["memory_gib"]
    );
    println!();
    print!("{}", report::table(&cases, push_concurrency));
    println!();
    print!(
        "{}",
        report::targets_table(&report::targets(&cases, push_concurrency))
    );
    println!();
    println!("JSON: {}", a.out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Pieces(a) => pieces(a),
        Command::Limit(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(limit_cmd(a))),
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
        Command::Criterion(a) => criterion(a),
        Command::Gc(a) => gc_cmd(a),
        Command::Record(l) => l.print(Map::new()),
        Command::Report(a) => report_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
