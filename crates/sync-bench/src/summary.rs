//! The summary of a run: the median of each figure per case, old against new
//! side by side, and the cost model.

use crate::results::{figure, num, Case};
use serde_json::Map;
use std::fmt::Write as _;

/// The figures old and new are compared on, where measured: `metric label`.
const COMPARED: [&str; 17] = [
    "events_per_s throughput, events/s",
    "p50_ms latency p50, ms",
    "p99_ms latency p99, ms",
    "status_errors answers ≥ 400",
    "cpu_ms_per_event sync CPU per event, ms",
    "log_bytes_per_event log bytes per event",
    "datastore_keys_looked_up_per_event entity reads per event",
    "datastore_entity_writes_per_event entity writes per event",
    "datastore_entity_deletes_per_event entity deletes per event",
    "apply_conflict_records_per_event conflict records per event",
    "events_per_transaction events per transaction",
    "apply_until_answered_us_per_event arrival to answer, µs",
    "publish_rpcs_per_event publish RPCs per event",
    "rss_kib RSS after the run, KiB",
    "ready_ms spawn to /healthz 200, ms",
    "first_ms first event after ready, ms",
    "first_over_p50 first event ÷ steady-state p50",
];

/// The whole summary as Markdown: every case but the compared ones with its
/// medians, then old against new, then the cost model.
pub fn render(cases: &[Case], baseline: &str) -> String {
    let mut out = String::from("| part | case | runs | medians |\n|---|---|---|---|\n");
    let compared = |c: &&Case| c.case.starts_with("old: ") || c.case.starts_with("new: ");
    for c in cases.iter().filter(|c| !compared(c)) {
        let keys: std::collections::BTreeSet<&String> = c.runs.iter().flat_map(Map::keys).collect();
        let medians = keys.iter().filter(|k| **k != "run");
        let medians: Vec<String> = medians
            .filter_map(|k| Some(format!("{k} {}", num(c.median(k)?))))
            .collect();
        let (item, case, runs) = (&c.item, &c.case, c.runs.len());
        let _ = writeln!(out, "| {item} | {case} | {runs} | {} |", medians.join(", "));
    }
    let _ = writeln!(
        out,
        "\n| part | case | figure | old ({baseline}) | new | new/old |"
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for c in cases.iter().filter(|c| c.case.starts_with("new: ")) {
        let (item, case) = (&c.item, &c.case["new: ".len()..]);
        for (metric, label) in COMPARED.iter().filter_map(|m| m.split_once(' ')) {
            let Some(new) = c.median(metric) else {
                continue;
            };
            let old = figure(cases, item, "old", case, metric);
            let ratio = old
                .filter(|o| *o != 0.0)
                .map(|o| format!("{:.2}×", new / o));
            let (old, new, ratio) = (
                old.map_or("–".into(), num),
                num(new),
                ratio.unwrap_or("–".into()),
            );
            let _ = writeln!(
                out,
                "| {item} | {case} | {label} | {old} | {new} | {ratio} |"
            );
        }
    }
    out + "\n" + &crate::cost::table(cases)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::group;
    use anyhow::Result;

    #[test]
    fn medians_per_case_and_old_against_new() -> Result<()> {
        let raw = r#"
{"item":"http_layer","case":"c=64","run":1,"events_per_s":18000}
{"item":"http_layer","case":"c=64","run":2,"events_per_s":22000}
{"item":"http_layer","case":"c=64","run":3,"events_per_s":21000}
{"item":"direct","case":"old: c=16","run":1,"events_per_s":400,"p50_ms":40}
{"item":"direct","case":"new: c=16","run":1,"events_per_s":700,"p50_ms":20}
{"item":"direct","case":"new: c=16","run":2,"events_per_s":500,"cpu_ms_per_event":0.13}
{"item":"burst","case":"sync-function","peak_rss_mib":10.57}"#;
        let text = render(&group(raw)?, "abc1234");
        for row in [
            "| http_layer | c=64 | 3 | events_per_s 21000 |",
            "| burst | sync-function | 1 | peak_rss_mib 10.6 |",
            "| direct | c=16 | throughput, events/s | 400 | 600 | 1.50× |",
            "| direct | c=16 | sync CPU per event, ms | – | 0.13 | – |",
        ] {
            assert!(text.contains(row), "{row} in {text}");
        }
        assert!(!text.contains("old: c=16"), "{text}");
        for bad in ["{\"item\":\"x\"}", "[1]", "nope"] {
            assert!(group(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
