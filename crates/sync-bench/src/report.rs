//! The report: raw results (one JSON object per run, JSON lines) grouped by
//! measurement and case, the median of every metric over the runs, one
//! Markdown table, the performance targets as met or not (end to end at 80 %
//! of the emulator's limit, the HTTP layer at 20,000 events/s, under 20 µs
//! per event in the core, cold start under 50 ms, idle RSS under 20 MiB),
//! and the JSON file.

use crate::stats::median;
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// One measurement and case with all its runs.
#[derive(Debug, Clone)]
pub struct Case {
    /// `core`, `http`, `limit`, `push`, `e2e`, `e2e_paced`, `cold_start`,
    /// `memory`, `size`, `growth`, `gc`.
    pub item: String,
    /// What was varied, e.g. `c=64` or `entities=10`.
    pub case: String,
    /// The raw objects, one per run.
    pub runs: Vec<Map<String, Value>>,
}

impl Case {
    /// Median over runs of a numeric metric.
    pub fn median(&self, metric: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.get(metric).and_then(Value::as_f64))
            .collect();
        median(&values)
    }

    fn medians(&self) -> Map<String, Value> {
        let mut keys: Vec<&String> = self
            .runs
            .iter()
            .flat_map(|r| r.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k))
            .filter(|k| k.as_str() != "run")
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| self.median(k).map(|m| (k.clone(), json!(m))))
            .collect()
    }

    fn all(&self, flag: &str) -> bool {
        self.runs
            .iter()
            .all(|r| r.get(flag).and_then(Value::as_bool).unwrap_or(true))
    }
}

/// Groups raw lines by (item, case), in order of first appearance.
///
/// # Errors
/// When a non-empty line is not a JSON object with `item` and `case`.
pub fn group(raw: &str) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = Vec::new();
    for (n, line) in raw.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).with_context(|| format!("raw line {}", n + 1))?;
        let Value::Object(map) = v else {
            anyhow::bail!("raw line {} is not an object", n + 1);
        };
        let text = |k: &str| {
            map.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("raw line {} has no {k}", n + 1))
        };
        let (item, case) = (text("item")?, text("case")?);
        match cases.iter_mut().find(|c| c.item == item && c.case == case) {
            Some(c) => c.runs.push(map),
            None => cases.push(Case {
                item,
                case,
                runs: vec![map],
            }),
        }
    }
    Ok(cases)
}

/// A number for people: no decimals from 100 up, one from 10, two below.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a < 100.0 && x.fract() == 0.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        let s = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        if x < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "–".to_string(), |v| format!("{} {unit}", num(v)))
}

/// `runs a–b` over the runs' values of `metric`, when there are several.
fn spread(c: &Case, metric: &str) -> String {
    let v: Vec<f64> = c
        .runs
        .iter()
        .filter_map(|r| r.get(metric).and_then(Value::as_f64))
        .collect();
    if v.len() < 2 {
        return String::new();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("runs {}–{}; ", num(lo), num(hi))
}

fn latency(c: &Case, p50: &str, p99: &str) -> String {
    match (c.median(p50), c.median(p99)) {
        (Some(a), Some(b)) => format!("{} / {} ms", num(a), num(b)),
        _ => "–".into(),
    }
}

/// The emulator's limit for `entities` at `concurrency`.
fn limit_at(cases: &[Case], entities: f64, concurrency: f64) -> Option<f64> {
    cases
        .iter()
        .find(|c| {
            c.item == "limit"
                && c.median("entities") == Some(entities)
                && c.median("concurrency") == Some(concurrency)
        })
        .and_then(|c| c.median("events_per_s"))
}

/// The emulator's limit for `entities`: the best rate over concurrencies.
fn limit_best(cases: &[Case], entities: f64) -> Option<(f64, String)> {
    cases
        .iter()
        .filter(|c| c.item == "limit" && c.median("entities") == Some(entities))
        .filter_map(|c| c.median("events_per_s").map(|r| (r, c.case.clone())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The end-to-end rate as a share of the emulator's limit for the same
/// entities: at the concurrency the push path runs at, and at the best one.
#[derive(Debug, Clone, PartialEq)]
struct Ratios {
    same: Option<f64>,
    best: Option<(f64, String)>,
}

fn e2e_ratios(cases: &[Case], c: &Case, push_concurrency: f64) -> Ratios {
    let (Some(rate), Some(entities)) = (c.median("events_per_s"), c.median("entities")) else {
        return Ratios {
            same: None,
            best: None,
        };
    };
    Ratios {
        same: limit_at(cases, entities, push_concurrency).map(|l| rate / l),
        best: limit_best(cases, entities).map(|(l, which)| (rate / l, which)),
    }
}

/// CPU ms per event of each measured process, and how busy the machine was.
fn cpu_note(c: &Case) -> String {
    const PREFIX: &str = "cpu_ms_per_event_";
    let mut names: Vec<String> = c
        .runs
        .iter()
        .flat_map(|r| {
            r.keys()
                .filter_map(|k| k.strip_prefix(PREFIX).map(str::to_string))
        })
        .collect();
    names.sort();
    names.dedup();
    let parts: Vec<String> = names
        .iter()
        .filter_map(|n| {
            c.median(&format!("{PREFIX}{n}"))
                .map(|ms| format!("{n} {}", num(ms)))
        })
        .collect();
    let busy = c
        .median("machine_busy_pct")
        .map_or_else(String::new, |b| format!(", machine {b:.0} % busy"));
    if parts.is_empty() {
        "CPU not measured".into()
    } else {
        format!("CPU ms/event: {}{busy}", parts.join(", "))
    }
}

fn percent(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_string(), |r| format!("{:.0} %", r * 100.0))
}

const TITLES: [(&str, &str); 11] = [
    ("core", "1. core: parse + validate + merge"),
    ("http", "2. HTTP layer alone (memory backend, wrk)"),
    ("limit", "3. Datastore emulator's limit (1 txn/event)"),
    (
        "push",
        "4a. Pub/Sub emulator's pushes in flight per subscription",
    ),
    ("e2e", "4. end to end, push path, saturated"),
    ("e2e_paced", "4b. end to end, paced below capacity"),
    ("cold_start", "5. cold start (spawn → /healthz 200)"),
    ("memory", "6. memory"),
    ("size", "6. release binary size"),
    ("growth", "7. growth (gcp backend, wrk, direct push POSTs)"),
    ("gc", "emulators' JVM pauses over the whole run"),
];

/// One Markdown row per case, in BENCHMARKS.md's order. `push_concurrency`
/// is how many pushes the emulator keeps in flight (the limit to compare with).
pub fn table(cases: &[Case], push_concurrency: f64) -> String {
    let mut out = String::from(
        "| measurement | case | median | latency p50 / p99 | notes |\n|---|---|---|---|---|\n",
    );
    for (item, title) in TITLES {
        for c in cases.iter().filter(|c| c.item == item) {
            let runs = c.runs.len();
            let (value, lat, mut notes) = match item {
                "core" => (
                    opt(c.median("us_per_event"), "µs/event"),
                    "–".into(),
                    "criterion median".to_string(),
                ),
                "http" | "growth" => (
                    opt(c.median("events_per_s"), "events/s"),
                    latency(c, "p50_ms", "p99_ms"),
                    match c.median("status_errors") {
                        Some(e) if e > 0.0 => format!("{} non-2xx (median)", num(e)),
                        _ => "all 2xx".into(),
                    },
                ),
                "limit" => (
                    opt(c.median("events_per_s"), "events/s"),
                    latency(c, "p50_ms", "p99_ms"),
                    format!(
                        "{} aborted+retried, {} failed (median)",
                        num(c.median("aborted").unwrap_or(0.0)),
                        num(c.median("failed").unwrap_or(0.0))
                    ),
                ),
                "e2e" | "e2e_paced" => {
                    let r = e2e_ratios(cases, c, push_concurrency);
                    let ratio = if item == "e2e" {
                        format!(
                            "{} of the limit at c={push_concurrency}, {} of the best ({}); ",
                            percent(r.same),
                            percent(r.best.as_ref().map(|b| b.0)),
                            r.best.as_ref().map_or("–", |b| b.1.as_str())
                        )
                    } else {
                        String::new()
                    };
                    let mem = format!(
                        "RSS idle {} → peak {}",
                        opt(c.median("rss_idle_kib").map(|k| k / 1024.0), "MiB"),
                        opt(c.median("rss_peak_kib").map(|k| k / 1024.0), "MiB")
                    );
                    (
                        opt(c.median("events_per_s"), "events/s"),
                        latency(c, "p50_ms", "p99_ms"),
                        format!(
                            "{ratio}{} once flowing (first event after {}); {}; {mem}; {} retries",
                            opt(c.median("steady_events_per_s"), "events/s"),
                            opt(c.median("first_event_s"), "s"),
                            cpu_note(c),
                            num(c.median("retries").unwrap_or(0.0))
                        ),
                    )
                }
                "cold_start" => (
                    opt(c.median("cold_start_ms"), "ms"),
                    "–".into(),
                    c.median("idle_rss_kib")
                        .map(|k| format!("idle RSS {} MiB", num(k / 1024.0)))
                        .unwrap_or_default(),
                ),
                "push" => (
                    opt(c.median("max_in_flight"), "in flight"),
                    "–".into(),
                    format!(
                        "slow endpoint, {} pushes answered",
                        num(c.median("answered").unwrap_or(0.0))
                    ),
                ),
                "memory" => (
                    opt(c.median("rss_kib").map(|k| k / 1024.0), "MiB RSS"),
                    "–".into(),
                    format!(
                        "peak {}; after {} distinct entities",
                        opt(c.median("hwm_kib").map(|k| k / 1024.0), "MiB"),
                        num(c.median("distinct_entities").unwrap_or(0.0))
                    ),
                ),
                "gc" => (
                    opt(c.median("pause_max_ms"), "ms longest pause"),
                    "–".into(),
                    format!(
                        "{} pauses, {} in all; heap up to {}",
                        num(c.median("pauses").unwrap_or(0.0)),
                        opt(c.median("pause_total_ms"), "ms"),
                        opt(c.median("heap_max_mib"), "MiB")
                    ),
                ),
                "size" => (
                    opt(c.median("bytes").map(|b| b / 1_048_576.0), "MiB"),
                    "–".into(),
                    String::new(),
                ),
                _ => ("–".into(), "–".into(), String::new()),
            };
            if matches!(item, "http" | "growth" | "limit" | "e2e") {
                notes = format!("{}{notes}", spread(c, "events_per_s"));
            }
            if !c.all("complete") {
                notes.push_str("; INCOMPLETE in some run");
            }
            let _ = writeln!(
                out,
                "| {title} | {} | {value} | {lat} | {notes}{}{runs} run{} |",
                c.case,
                if notes.is_empty() { "" } else { "; " },
                if runs == 1 { "" } else { "s" }
            );
        }
    }
    out
}

/// A performance target and whether this run met it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The goal, in words.
    pub goal: String,
    /// What was measured, in words.
    pub measured: String,
    /// `None` when it was not measured.
    pub met: Option<bool>,
}

/// The targets, as ratios in this run.
pub fn targets(cases: &[Case], push_concurrency: f64) -> Vec<Target> {
    let find = |item: &str, case: &str| cases.iter().find(|c| c.item == item && c.case == case);
    let mut out = Vec::new();
    for c in cases.iter().filter(|c| c.item == "e2e") {
        let r = e2e_ratios(cases, c, push_concurrency);
        out.push(Target {
            name: format!("end to end, {}", c.case),
            goal: format!(
                "≥ 80 % of the emulator's limit at the same concurrency ({push_concurrency})"
            ),
            measured: format!(
                "{} ({} of the best limit, {})",
                percent(r.same),
                percent(r.best.as_ref().map(|b| b.0)),
                r.best.as_ref().map_or("–", |b| b.1.as_str())
            ),
            met: r.same.map(|r| r >= 0.8),
        });
    }
    let http = find("http", "c=64").and_then(|c| c.median("events_per_s"));
    out.push(Target {
        name: "HTTP layer alone, concurrency 64".into(),
        goal: "≥ 20,000 events/s".into(),
        measured: opt(http, "events/s"),
        met: http.map(|r| r >= 20_000.0),
    });
    let core = find("core", "parse_validate_merge").and_then(|c| c.median("us_per_event"));
    out.push(Target {
        name: "core per event".into(),
        goal: "< 20 µs".into(),
        measured: opt(core, "µs"),
        met: core.map(|us| us < 20.0),
    });
    for c in cases.iter().filter(|c| c.item == "cold_start") {
        let ms = c.median("cold_start_ms");
        out.push(Target {
            name: format!("cold start, {}", c.case),
            goal: "< 50 ms".into(),
            measured: opt(ms, "ms"),
            met: ms.map(|m| m < 50.0),
        });
    }
    for c in cases.iter().filter(|c| c.item == "cold_start") {
        let mib = c.median("idle_rss_kib").map(|k| k / 1024.0);
        if mib.is_some() {
            out.push(Target {
                name: format!("idle RSS, {}", c.case),
                goal: "< 20 MiB".into(),
                measured: opt(mib, "MiB"),
                met: mib.map(|m| m < 20.0),
            });
        }
    }
    out.extend(crate::compare::targets(cases));
    out
}

/// The targets as a Markdown table.
pub fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("| target | goal | measured | met |\n|---|---|---|---|\n");
    for t in targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {} | {met} |", t.name, t.goal, t.measured);
    }
    out
}

/// This machine, as BENCHMARKS.md describes it.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": model,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1_048_576.0 * 10.0).round() / 10.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
    })
}

/// The whole results document.
pub fn document(cases: &[Case], push_concurrency: f64, meta: Map<String, Value>) -> Value {
    let targets = targets(cases, push_concurrency);
    json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "machine": machine(),
        "meta": meta,
        "push_concurrency": push_concurrency,
        "results": cases.iter().map(|c| json!({
            "item": c.item,
            "case": c.case,
            "runs": c.runs.len(),
            "median": c.medians(),
            "samples": c.runs,
        })).collect::<Vec<_>>(),
        "targets": targets.iter().map(|t| json!({
            "name": t.name, "goal": t.goal, "measured": t.measured, "met": t.met,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"
{"item":"core","case":"parse_validate_merge","run":1,"us_per_event":3.7}
{"item":"http","case":"c=64","run":1,"events_per_s":18000,"p50_ms":3,"p99_ms":9,"status_errors":0}
{"item":"http","case":"c=64","run":2,"events_per_s":22000,"p50_ms":2,"p99_ms":8,"status_errors":0}
{"item":"http","case":"c=64","run":3,"events_per_s":21000,"p50_ms":2,"p99_ms":7,"status_errors":0}
{"item":"limit","case":"entities=1000 c=2","run":1,"entities":1000,"concurrency":2,"events_per_s":750}
{"item":"limit","case":"entities=1000 c=16","run":1,"entities":1000,"concurrency":16,"events_per_s":1000}
{"item":"limit","case":"entities=1000 c=64","run":1,"entities":1000,"concurrency":64,"events_per_s":1200}
{"item":"e2e","case":"entities=1000","run":1,"entities":1000,"events_per_s":600,"complete":true}
{"item":"cold_start","case":"sync-function","run":1,"cold_start_ms":12,"idle_rss_kib":10240}
"#;

    #[test]
    fn medians_ratios_and_targets() -> Result<()> {
        let cases = group(RAW)?;
        assert_eq!(cases.len(), 7);
        let http = cases.iter().find(|c| c.item == "http").expect("http");
        assert_eq!(http.median("events_per_s"), Some(21000.0));
        let e2e = cases.iter().find(|c| c.item == "e2e").expect("e2e");
        let r = e2e_ratios(&cases, e2e, 2.0);
        assert_eq!(r.same, Some(0.8));
        assert_eq!(r.best, Some((0.5, "entities=1000 c=64".to_string())));
        assert_eq!(e2e_ratios(&cases, e2e, 3.0).same, None);
        let t = targets(&cases, 2.0);
        let met: Vec<(String, Option<bool>)> = t.iter().map(|t| (t.name.clone(), t.met)).collect();
        assert!(met.contains(&("end to end, entities=1000".into(), Some(true))));
        assert!(met.contains(&("HTTP layer alone, concurrency 64".into(), Some(true))));
        assert!(met.contains(&("core per event".into(), Some(true))));
        assert!(met.contains(&("cold start, sync-function".into(), Some(true))));
        assert!(met.contains(&("idle RSS, sync-function".into(), Some(true))));
        let table = table(&cases, 2.0);
        assert!(table.contains("| 21,000 events/s | 2 / 8 ms |"), "{table}");
        assert!(
            table.contains("80 % of the limit at c=2, 50 % of the best (entities=1000 c=64)"),
            "{table}"
        );
        Ok(())
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(21000.4), "21,000");
        assert_eq!(num(123.0), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(3.717), "3.72");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(1_234_567.0), "1,234,567");
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(group("{\"item\":\"x\"}").is_err());
        assert!(group("[1]").is_err());
        assert!(group("nope").is_err());
    }
}
