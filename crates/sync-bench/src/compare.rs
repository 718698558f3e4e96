//! Item 8: the direct path of this tree's sync function (`new`) against the
//! baseline revision's release binary (`old`), measured side by side in one
//! run, as ratios; and its targets.
//!
//! Results are named `WHICH: CASE` (`old: c=16, 200 entities`) under the
//! items `direct` (wrk runs: throughput, latency, CPU and log bytes per
//! event, each binary's own counters as `fn_…`), `direct_rpc` (runs through
//! the RPC proxy: calls and request bytes per event as `wire_WHICH_…`),
//! `direct_memory` and `first_event` (case `old` or `new`). The hot-key
//! cases at production latency add `, +N ms` to the case: N ms added to
//! every Datastore request by a relay.

use crate::report::{num, Case, Target};
use std::fmt::Write as _;

/// The cases of item 8: (concurrency, entities).
pub const CASES: [(u32, u32); 2] = [(16, 200), (64, 10)];
/// The ms added to every Datastore request in the hot-key cases.
pub const DELAYS_MS: [u32; 3] = [0, 20, 50];

/// The case name of `(concurrency, entities)`.
pub fn case_name(concurrency: u32, entities: u32) -> String {
    format!("c={concurrency}, {entities} entities")
}

/// The case name of the hot-key case with `delay_ms` added.
pub fn delayed_case(delay_ms: u32) -> String {
    format!("{}, +{delay_ms} ms", case_name(64, 10))
}

/// Every case of item 8, in the table's order.
fn all_cases() -> Vec<String> {
    CASES
        .iter()
        .map(|&(c, e)| case_name(c, e))
        .chain(DELAYS_MS.iter().map(|&d| delayed_case(d)))
        .collect()
}

/// The median of `metric` in `item` for `which` (`old` or `new`) and `case`
/// (empty for the items whose case is `which` alone).
pub fn figure(cases: &[Case], item: &str, which: &str, case: &str, metric: &str) -> Option<f64> {
    let name = if case.is_empty() {
        which.to_string()
    } else {
        format!("{which}: {case}")
    };
    let metric = metric.replace("{which}", which);
    cases
        .iter()
        .find(|c| c.item == item && c.case == name)
        .and_then(|c| c.median(&metric))
}

/// One compared figure: its label, where it comes from, its unit.
struct Row {
    label: &'static str,
    item: &'static str,
    metric: &'static str,
    unit: &'static str,
}

const ROWS: [Row; 13] = [
    Row {
        label: "throughput",
        item: "direct",
        metric: "events_per_s",
        unit: "events/s",
    },
    Row {
        label: "latency p50",
        item: "direct",
        metric: "p50_ms",
        unit: "ms",
    },
    Row {
        label: "latency p99",
        item: "direct",
        metric: "p99_ms",
        unit: "ms",
    },
    Row {
        label: "sync CPU per event",
        item: "direct",
        metric: "cpu_ms_per_event",
        unit: "ms",
    },
    Row {
        label: "Datastore RPCs per event (wire)",
        item: "direct_rpc",
        metric: "wire_{which}_datastore_calls_per_event",
        unit: "",
    },
    Row {
        label: "Datastore request bytes per event (wire)",
        item: "direct_rpc",
        metric: "wire_{which}_datastore_request_bytes_per_event",
        unit: "B",
    },
    Row {
        label: "publish RPCs per event (wire)",
        item: "direct_rpc",
        metric: "wire_{which}_pubsub_calls_per_event",
        unit: "",
    },
    Row {
        label: "publish request bytes per event (wire)",
        item: "direct_rpc",
        metric: "wire_{which}_pubsub_request_bytes_per_event",
        unit: "B",
    },
    Row {
        label: "log bytes per event",
        item: "direct",
        metric: "log_bytes_per_event",
        unit: "B",
    },
    Row {
        label: "entity reads per event (keys looked up)",
        item: "direct",
        metric: "fn_datastore_keys_looked_up_per_event",
        unit: "",
    },
    Row {
        label: "entity writes per event",
        item: "direct",
        metric: "fn_datastore_entity_writes_per_event",
        unit: "",
    },
    Row {
        label: "entity deletes per event",
        item: "direct",
        metric: "fn_datastore_entity_deletes_per_event",
        unit: "",
    },
    Row {
        label: "events per transaction (group)",
        item: "direct",
        metric: "events_per_transaction",
        unit: "",
    },
];

/// New's own counts per delivery (from its throughput runs), shown for new
/// only: (label, metric, scale).
const OWN: [(&str, &str, f64); 7] = [
    ("lookups", "fn_datastore_lookup_per_event", 1.0),
    ("begins", "fn_datastore_begin_transaction_per_event", 1.0),
    ("commits", "fn_datastore_commit_per_event", 1.0),
    (
        "conflict records",
        "fn_apply_conflict_records_per_event",
        1.0,
    ),
    ("late turns", "fn_apply_late_turns_per_event", 1.0),
    (
        "ms from arrival to answer",
        "fn_apply_until_answered_us_per_event",
        1e-3,
    ),
    (
        "ms from answer to return",
        "fn_apply_answered_to_return_us_per_event",
        1e-3,
    ),
];

fn cell(x: Option<f64>, unit: &str) -> String {
    match x {
        Some(v) if unit.is_empty() => num(v),
        Some(v) => format!("{} {unit}", num(v)),
        None => "–".into(),
    }
}

fn ratio(old: Option<f64>, new: Option<f64>) -> Option<f64> {
    match (old, new) {
        (Some(o), Some(n)) if o > 0.0 => Some(n / o),
        _ => None,
    }
}

fn ratio_cell(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

/// Whether any result of item 8 is present.
pub fn present(cases: &[Case]) -> bool {
    cases.iter().any(|c| {
        matches!(
            c.item.as_str(),
            "direct" | "direct_rpc" | "direct_memory" | "first_event"
        )
    })
}

/// The side-by-side table of item 8, `baseline` naming the old binary.
pub fn table(cases: &[Case], baseline: &str) -> String {
    let mut out = format!(
        "| 8. direct path | figure | old ({baseline}) | new | new/old |\n|---|---|---|---|---|\n"
    );
    for case in all_cases() {
        for row in &ROWS {
            let old = figure(cases, row.item, "old", &case, row.metric);
            let new = figure(cases, row.item, "new", &case, row.metric);
            if old.is_none() && new.is_none() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {case} | {} | {} | {} | {} |",
                row.label,
                cell(old, row.unit),
                cell(new, row.unit),
                ratio_cell(ratio(old, new))
            );
        }
        let own: Vec<String> = OWN
            .iter()
            .filter_map(|(label, metric, scale)| {
                figure(cases, "direct", "new", &case, metric)
                    .map(|v| format!("{} {label}", num(v * scale)))
            })
            .collect();
        if !own.is_empty() {
            let _ = writeln!(
                out,
                "| {case} | per event, counted by new itself | – | {} | – |",
                own.join(", ")
            );
        }
    }
    let memory = |which: &str, metric: &str| figure(cases, "direct_memory", which, "", metric);
    let (old, new) = (
        memory("old", "rss_kib").map(|k| k / 1024.0),
        memory("new", "rss_kib").map(|k| k / 1024.0),
    );
    if old.is_some() || new.is_some() {
        let _ = writeln!(
            out,
            "| after {} / {} distinct entities | RSS | {} | {} | {} |",
            num(memory("old", "distinct_entities").unwrap_or(0.0)),
            num(memory("new", "distinct_entities").unwrap_or(0.0)),
            cell(old, "MiB"),
            cell(new, "MiB"),
            ratio_cell(ratio(old, new))
        );
    }
    let first = |which: &str, metric: &str| figure(cases, "first_event", which, "", metric);
    for (label, metric, unit) in [
        ("spawn to /healthz 200", "ready_ms", "ms"),
        ("first event after ready", "first_ms", "ms"),
        ("steady state, one at a time (p50)", "steady_p50_ms", "ms"),
        ("first event ÷ steady p50", "first_over_p50", ""),
        (
            "first event answered 204 (1 yes, 0 no; median of starts)",
            "first_ok",
            "",
        ),
    ] {
        let (old, new) = (first("old", metric), first("new", metric));
        if old.is_some() || new.is_some() {
            let _ = writeln!(
                out,
                "| first event | {label} | {} | {} | {} |",
                cell(old, unit),
                cell(new, unit),
                ratio_cell(ratio(old, new))
            );
        }
    }
    out
}

/// The targets of item 8, where measured.
pub fn targets(cases: &[Case]) -> Vec<Target> {
    let mut out = Vec::new();
    if !present(cases) {
        return out;
    }
    let c16 = case_name(16, 200);
    let cpu = figure(cases, "direct", "new", &c16, "cpu_ms_per_event");
    out.push(Target {
        name: format!("sync CPU per event, direct, {c16}"),
        goal: "≤ 0.15 ms".into(),
        measured: cell(cpu, "ms"),
        met: cpu.map(|v| v <= 0.15),
    });
    let reads = figure(
        cases,
        "direct",
        "new",
        &c16,
        "fn_datastore_keys_looked_up_per_event",
    );
    out.push(Target {
        name: format!("entity reads per event, {c16} (updates, some creates and deletes)"),
        goal: "≤ 1.1".into(),
        measured: cell(reads, ""),
        met: reads.map(|r| r <= 1.1),
    });
    let slow = delayed_case(50);
    let r = ratio(
        figure(cases, "direct", "old", &slow, "events_per_s"),
        figure(cases, "direct", "new", &slow, "events_per_s"),
    );
    out.push(Target {
        name: format!("hot keys at production latency, {slow}: throughput new ÷ old"),
        goal: "≥ 5×".into(),
        measured: ratio_cell(r),
        met: r.map(|r| r >= 5.0),
    });
    let groups: Vec<Option<f64>> = DELAYS_MS
        .iter()
        .map(|&d| {
            figure(
                cases,
                "direct",
                "new",
                &delayed_case(d),
                "events_per_transaction",
            )
        })
        .collect();
    out.push(Target {
        name: format!(
            "hot keys: events per transaction at +{} ms",
            DELAYS_MS.map(|d| d.to_string()).join(" / ")
        ),
        goal: "grows with the latency".into(),
        measured: groups
            .iter()
            .map(|g| cell(*g, ""))
            .collect::<Vec<_>>()
            .join(" / "),
        met: groups
            .iter()
            .copied()
            .collect::<Option<Vec<f64>>>()
            .map(|g| g.windows(2).all(|w| w[1] > w[0])),
    });
    out.extend(crate::cost::target(cases));
    let publishes = figure(
        cases,
        "direct_rpc",
        "new",
        &c16,
        "wire_{which}_pubsub_calls_per_event",
    );
    out.push(Target {
        name: format!("publish RPCs per event, {c16}"),
        goal: "≤ 0.3".into(),
        measured: cell(publishes, ""),
        met: publishes.map(|p| p <= 0.3),
    });
    let first = figure(cases, "first_event", "new", "", "first_over_p50");
    let answered = figure(cases, "first_event", "new", "", "first_ok").unwrap_or(1.0) >= 1.0;
    out.push(Target {
        name: "first event after /healthz turns 200".into(),
        goal: "answered 204 within 2× the steady-state p50".into(),
        measured: format!(
            "{}{}",
            ratio_cell(first),
            if answered { "" } else { ", not answered 204" }
        ),
        met: first.map(|r| r <= 2.0 && answered),
    });
    let rss = figure(cases, "direct_memory", "new", "", "rss_kib").map(|k| k / 1024.0);
    let distinct = figure(cases, "direct_memory", "new", "", "distinct_entities").unwrap_or(0.0);
    out.push(Target {
        name: "RSS after 20,000 distinct entities".into(),
        goal: "< 30 MiB".into(),
        measured: format!("{} after {}", cell(rss, "MiB"), num(distinct)),
        met: rss.map(|m| m < 30.0 && distinct >= 20_000.0),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::group;

    const RAW: &str = r#"
{"item":"direct","case":"old: c=16, 200 entities","run":1,"events_per_s":400,"cpu_ms_per_event":0.4,"p50_ms":40}
{"item":"direct","case":"new: c=16, 200 entities","run":1,"events_per_s":700,"cpu_ms_per_event":0.13,"p50_ms":20}
{"item":"direct","case":"new: c=16, 200 entities","run":2,"events_per_s":500,"cpu_ms_per_event":0.16,"p50_ms":22}
{"item":"direct","case":"old: c=64, 10 entities","run":1,"events_per_s":100}
{"item":"direct","case":"new: c=64, 10 entities","run":1,"events_per_s":350}
{"item":"direct_rpc","case":"new: c=16, 200 entities","run":4,"wire_new_pubsub_calls_per_event":0.25,"wire_old_pubsub_calls_per_event":0}
{"item":"direct","case":"new: c=16, 200 entities","run":3,"fn_datastore_lookup_per_event":1.0,"fn_datastore_keys_looked_up_per_event":1.04}
{"item":"direct","case":"old: c=64, 10 entities, +50 ms","run":1,"events_per_s":99}
{"item":"direct","case":"new: c=64, 10 entities, +0 ms","run":1,"events_per_s":900,"events_per_transaction":1.4}
{"item":"direct","case":"new: c=64, 10 entities, +20 ms","run":1,"events_per_s":700,"events_per_transaction":3.1}
{"item":"direct","case":"new: c=64, 10 entities, +50 ms","run":1,"events_per_s":520,"events_per_transaction":2.9,"fn_apply_answered_to_return_us_per_event":120}
{"item":"direct_rpc","case":"old: c=16, 200 entities","run":4,"wire_old_pubsub_calls_per_event":1.0,"wire_new_pubsub_calls_per_event":0}
{"item":"direct_memory","case":"new","run":1,"rss_kib":20480,"distinct_entities":19000}
{"item":"first_event","case":"new","run":1,"first_over_p50":1.5}
{"item":"first_event","case":"new","run":2,"first_over_p50":2.5}
{"item":"first_event","case":"new","run":3,"first_over_p50":1.9}
"#;

    #[test]
    fn ratios_and_targets_come_from_the_medians_of_each_side() -> anyhow::Result<()> {
        let cases = group(RAW)?;
        let t = targets(&cases);
        let met = |name: &str| {
            t.iter()
                .find(|t| t.name == name)
                .map(|t| t.met)
                .unwrap_or_else(|| panic!("no target {name}: {t:?}"))
        };
        // Medians: new 600 events/s and 0.145 ms over two runs.
        assert_eq!(
            met("sync CPU per event, direct, c=16, 200 entities"),
            Some(true)
        );
        assert_eq!(
            met("entity reads per event, c=16, 200 entities (updates, some creates and deletes)"),
            Some(true)
        );
        assert_eq!(
            met("hot keys at production latency, c=64, 10 entities, +50 ms: throughput new ÷ old"),
            Some(true)
        );
        // 1.4, 3.1, 2.9: not growing all the way.
        assert_eq!(
            met("hot keys: events per transaction at +0 / 20 / 50 ms"),
            Some(false)
        );
        assert_eq!(
            met("publish RPCs per event, c=16, 200 entities"),
            Some(true)
        );
        assert_eq!(met("first event after /healthz turns 200"), Some(true));
        // 20 MiB, but fewer entities than the target names: not met.
        assert_eq!(met("RSS after 20,000 distinct entities"), Some(false));
        let table = table(&cases, "abc1234");
        assert!(
            table.contains(
                "| c=16, 200 entities | throughput | 400 events/s | 600 events/s | 1.50× |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| c=16, 200 entities | publish RPCs per event (wire) | 1 | 0.25 | 0.25× |"
            ),
            "{table}"
        );
        assert!(table.contains("1 lookups"), "{table}");
        assert!(
            table.contains(
                "| c=64, 10 entities, +50 ms | events per transaction (group) | – | 2.90 | – |"
            ),
            "{table}"
        );
        assert!(table.contains("0.12 ms from answer to return"), "{table}");
        Ok(())
    }

    #[test]
    fn nothing_is_claimed_without_results() {
        assert!(targets(&[]).is_empty());
        assert!(!present(&[]));
    }
}
