//! Load on the HTTP path: wrk with `scripts/bench/push.lua` against one or
//! more sync functions, which take turns (the order alternating per run, so
//! a drift of the host favours none), each run on entities of its own (an
//! apply dropped with wrk's last connections could leave a lock behind).
//! Around each run it reads the target's CPU time and log size, its own
//! counters (`/debug/counters`: Datastore RPCs, keys looked up, entities
//! written and deleted, how applies shared transactions) and the publish
//! RPCs the relay counted on its route, each then per event; after it, RSS.
//! Runs from the repository's root (the wrk script, `target/bench`).

use crate::bodies::Spec;
use crate::proc::{cpu_s, rss_kib};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::path::PathBuf;

/// A sync function under load: `NAME=PORT[,PID[,LOG]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target(String, u16, Option<u32>, Option<PathBuf>);

/// Parses a target.
///
/// # Errors
/// When it is not `NAME=PORT[,PID[,LOG]]`.
pub fn target(s: &str) -> Result<Target, String> {
    let bad = || format!("{s:?}: expected NAME=PORT[,PID[,LOG]]");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ',');
    let port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let pid = parts.next().map(str::parse).transpose();
    let (pid, log) = (pid.map_err(|_| bad())?, parts.next().map(PathBuf::from));
    Ok(Target(name.into(), port, pid, log))
}

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct Plan {
    /// The part measured (`http_layer`, `direct`, `memory`).
    #[arg(long)]
    item: String,
    /// The case; with several targets, each result's is `NAME: CASE`.
    #[arg(long)]
    case: String,
    /// A sync function under load, `NAME=PORT[,PID[,LOG]]`, repeatable.
    #[arg(long = "target", required = true, value_parser = target)]
    targets: Vec<Target>,
    /// Distinct entities, taken in turn.
    #[arg(long)]
    entities: u64,
    /// Creates and deletes among the updates.
    #[arg(long)]
    mix: bool,
    /// Connections (requests in flight).
    #[arg(long)]
    connections: u32,
    /// Seconds per measured run.
    #[arg(long)]
    secs: u32,
    /// The most events per second a run may reach (bodies are written for it).
    #[arg(long, default_value_t = 20_000)]
    max_rate: u32,
    /// Measured runs per target, after an unrecorded warm-up of 1 s.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// No warm-up run.
    #[arg(long)]
    no_warmup: bool,
    /// The control port of the relay the targets publish through (its
    /// routes named as the targets).
    #[arg(long)]
    publish_relay: Option<u16>,
}

/// What is read before and after a run: the target's counters, its
/// route's publish counts, its CPU seconds and its log's size.
type Reading = (Map<String, Value>, Option<Value>, Option<f64>, Option<f64>);

fn read(plan: &Plan, Target(name, port, pid, log): &Target) -> Reading {
    let mut counters = Map::new();
    let served = get_json(*port, "/debug/counters");
    numbers("", served.as_ref(), &mut counters);
    let relay = plan
        .publish_relay
        .and_then(|p| get_json(p, "/")?.get(name).cloned());
    let log_bytes = log
        .as_ref()
        .and_then(|l| Some(std::fs::metadata(l).ok()?.len() as f64));
    let cpu = pid.and_then(|pid| cpu_s(&format!("pid:{pid}")));
    (counters, relay, cpu, log_bytes)
}

/// Runs the plan, printing one JSON line per measured run.
///
/// # Errors
/// When wrk cannot run, prints no result, or runs out of bodies.
pub fn run(plan: &Plan) -> Result<()> {
    let first = u32::from(plan.no_warmup);
    for run in first..=plan.runs {
        let mut order = plan.targets.clone();
        if run % 2 == 0 {
            order.reverse();
        }
        for t in &order {
            let result = one(plan, t, run)?;
            if run > 0 {
                println!("{}", Value::Object(result));
            }
        }
    }
    Ok(())
}

fn one(plan: &Plan, t: &Target, run: u32) -> Result<Map<String, Value>> {
    let Target(name, port, pid, _) = t;
    let slug: String = plan
        .case
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let spec = Spec::new(
        plan.entities,
        format!("{}-{slug}-{name}-r{run}", plan.item),
        plan.mix,
    );
    let secs = if run == 0 { 1 } else { plan.secs };
    let count = u64::from(secs) * u64::from(plan.max_rate);
    let file = PathBuf::from(format!("target/bench/{}.bodies", spec.prefix));
    spec.write(count, &file).context("writing the bodies")?;
    let (connections, duration) = (plan.connections.to_string(), format!("{secs}s"));
    let url = format!("http://127.0.0.1:{port}/");
    let before = read(plan, t);
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            "-c",
            &connections,
            "-d",
            &duration,
            "--timeout",
            "30s",
        ])
        .args(["-s", "scripts/bench/push.lua", &url])
        .env("BENCH_BODIES", &file)
        .output()
        .context("running wrk")?;
    let after = read(plan, t);
    std::fs::remove_file(&file)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        bail!(
            "no result from wrk: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let w: Value = serde_json::from_str(line).context("wrk's result line")?;
    let n = |k: &str| w[k].as_f64().unwrap_or(0.0);
    anyhow::ensure!(
        n("requests") <= count as f64,
        "wrk sent all {count} bodies: raise --max-rate"
    );
    let case = match plan.targets.len() {
        1 => plan.case.clone(),
        _ => format!("{name}: {}", plan.case),
    };
    let mut m = json!({
        "item": plan.item, "case": case, "run": run, "requests": n("requests"),
        "errors": n("errors"), "status_errors": n("status_errors"),
        "events_per_s": n("requests") * 1e6 / n("duration_us").max(1.0),
        "p50_ms": n("p50_us") / 1000.0, "p99_ms": n("p99_us") / 1000.0,
    });
    // Per event: per delivery the function answered where it counts them
    // (the requests wrk dropped at its end among them), else per request.
    let delta = |k: &str| Some(after.0.get(k)?.as_f64()? - before.0.get(k)?.as_f64()?);
    let events = delta("deliveries")
        .filter(|d| *d > 0.0)
        .unwrap_or(n("requests"))
        .max(1.0);
    let mut put = |k: &str, v: Option<f64>| v.map(|v| m[k] = json!(v));
    for k in after.0.keys().filter(|k| k.as_str() != "deliveries") {
        put(&format!("{k}_per_event"), delta(k).map(|d| d / events));
    }
    let transactions = delta("datastore_commit").zip(delta("datastore_rollback"));
    let transactions = transactions.map(|(c, r)| c + r).filter(|tx| *tx > 0.0);
    put("events_per_transaction", transactions.map(|tx| events / tx));
    let relay = |r: &Reading, k: &str| r.1.as_ref()?.get(k)?.as_f64();
    for (k, name) in [
        ("calls", "publish_rpcs"),
        ("request_bytes", "publish_bytes"),
    ] {
        let d = relay(&after, k)
            .zip(relay(&before, k))
            .map(|(y, x)| (y - x) / events);
        put(&format!("{name}_per_event"), d);
    }
    put(
        "cpu_ms_per_event",
        after
            .2
            .zip(before.2)
            .map(|(y, x)| (y - x) * 1000.0 / events),
    );
    put(
        "log_bytes_per_event",
        after.3.zip(before.3).map(|(y, x)| (y - x) / events),
    );
    let rss = pid.and_then(rss_kib);
    put("rss_kib", rss.map(|(rss, _)| rss as f64));
    put("peak_rss_kib", rss.map(|(_, peak)| peak as f64));
    put("entities", Some(n("requests").min(plan.entities as f64)));
    Ok(m.as_object().cloned().unwrap_or_default())
}

/// Every number in `v`, nested objects flattened as `a_b` (the per-delivery
/// ratios left out: their differences mean nothing).
fn numbers(prefix: &str, v: Option<&Value>, out: &mut Map<String, Value>) {
    match v {
        Some(Value::Number(x)) => {
            out.insert(prefix.trim_end_matches('_').to_string(), json!(x));
        }
        Some(Value::Object(m)) => {
            for (k, v) in m.iter().filter(|(k, _)| k.as_str() != "per_delivery") {
                numbers(&format!("{prefix}{k}_"), Some(v), out);
            }
        }
        _ => {}
    }
}

/// `GET path` on a loopback port, as JSON; `None` unless answered 200 with JSON.
fn get_json(port: u16, path: &str) -> Option<Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let timeout = Some(std::time::Duration::from_secs(10));
    s.set_read_timeout(timeout).ok()?;
    // One write: the relay's control port reads once and closes, and bytes
    // left unread would reset the connection before its answer is read.
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let ok = head.split_whitespace().nth(1) == Some("200");
    ok.then(|| serde_json::from_str(body).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_flatten_without_the_per_delivery_ratios() {
        let v = json!({"deliveries": 4, "datastore": {"commit": 2, "kind": "x"}, "per_delivery": {"commit": 0.5}});
        let mut out = Map::new();
        numbers("", Some(&v), &mut out);
        assert_eq!(
            Value::Object(out),
            json!({"datastore_commit": 2, "deliveries": 4})
        );
    }
}
