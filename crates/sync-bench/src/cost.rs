//! The cost model: dollars per million events on Cloud Run, Datastore,
//! Pub/Sub and Cloud Logging, for the old binary, the new one and the
//! recipe, from the direct path's mix at 16 requests over 200 entities and
//! list prices. `docs/benchmarks.md` states each price with its source and
//! each assumption: Cloud Run bills CPU ÷ 0.6 of instance time (its
//! autoscaler's target), every key looked up is a read, Pub/Sub bills at
//! least 1,000 bytes per request; the recipe (Step 4's `main.py`) reads and
//! writes (or deletes) one entity per event, publishes each change in a
//! request of its own, logs what its f-strings print, and spends the CPU
//! measured against ours on the same workload.

use crate::results::{figure, num, Case};
use chrono::{Datelike, NaiveDateTime, Timelike};
use serde_json::{json, Value};
use std::fmt::Write as _;

const VCPU_SECOND: f64 = 0.000_024;
const GIB_SECOND: f64 = 0.000_002_5;
const PER_REQUEST: f64 = 0.40 / 1e6;
const READ: f64 = 0.06 / 1e5;
const WRITE: f64 = 0.18 / 1e5;
const DELETE: f64 = 0.02 / 1e5;
const PUBSUB_PER_BYTE: f64 = 40.0 / 1_099_511_627_776.0;
const PUBSUB_MIN_BYTES: f64 = 1000.0;
const LOGGING_PER_BYTE: f64 = 0.50 / 1_073_741_824.0;
/// The CPU utilization Cloud Run's autoscaler keeps instances near.
const TARGET_UTILIZATION: f64 = 0.6;
/// Memory of the services as `deploy/` deploys them, GiB.
const SYNC_GIB: f64 = 0.25;
const AUDIT_GIB: f64 = 0.125;
/// Our audit function's CPU per event when the end-to-end part did not run, ms.
const AUDIT_CPU_MS: f64 = 0.050;
/// The recipe's CPU per event over ours, measured on the same emulators and
/// workload: sync 2.97 against 0.435 ms (ours 0.15×), audit 0.64 against 0.050.
const RECIPE_SYNC_CPU_PER_OURS: f64 = 1.0 / 0.15;
const RECIPE_AUDIT_CPU_PER_OURS: f64 = 0.64 / 0.050;
/// The case the model reads.
pub const CASE: &str = "c=16, 200 entities, mix";
/// The bill's lines.
const LINES: [&str; 9] = [
    "Cloud Run sync: vCPU- and GiB-seconds",
    "Cloud Run audit: vCPU- and GiB-seconds",
    "Cloud Run requests (sync and audit pushes)",
    "Datastore entity reads",
    "Datastore entity writes (without conflict records)",
    "Datastore conflict records",
    "Datastore entity deletes",
    "Pub/Sub throughput",
    "Cloud Logging (the sync function's log)",
];

/// The bill per million events of a busy service, line by line ([`LINES`]),
/// from the figures per event that `get` gives by name: the direct path's
/// (`cpu_ms_per_event`, `datastore_keys_looked_up_per_event`, …), the audit
/// function's CPU (`audit_cpu_ms`) and the event's size (`event_bytes`).
fn bill(get: impl Fn(&str) -> f64) -> [f64; 9] {
    let run =
        |ms: f64, gib: f64| ms / 1000.0 / TARGET_UTILIZATION * (VCPU_SECOND + gib * GIB_SECOND);
    // The event is published once and pushed twice; each publish request
    // and each announcement's delivery pays at least the minimum.
    let (rpcs, bytes) = (
        get("publish_rpcs_per_event"),
        get("publish_bytes_per_event"),
    );
    let announced = get("pubsub_messages_handed_per_event");
    let pubsub = 3.0 * get("event_bytes").max(PUBSUB_MIN_BYTES)
        + bytes.max(PUBSUB_MIN_BYTES * rpcs)
        + (bytes / announced.max(1e-9)).max(PUBSUB_MIN_BYTES) * announced;
    let conflicts = get("apply_conflict_records_per_event");
    [
        run(get("cpu_ms_per_event"), SYNC_GIB),
        run(get("audit_cpu_ms"), AUDIT_GIB),
        2.0 * PER_REQUEST,
        get("datastore_keys_looked_up_per_event") * READ,
        (get("datastore_entity_writes_per_event") - conflicts) * WRITE,
        conflicts * WRITE,
        get("datastore_entity_deletes_per_event") * DELETE,
        pubsub * PUBSUB_PER_BYTE,
        get("log_bytes_per_event") * LOGGING_PER_BYTE,
    ]
    .map(|dollars| dollars * 1e6)
}

/// What the recipe's `logging.info` f-strings print for `event`, with
/// newlines, in bytes: as an update (the event, "published", the result
/// with the entity), and as a delete (the event, a short result).
fn recipe_log_bytes(event: &Value) -> Option<(f64, f64)> {
    let ts = event["timestamp"].as_str()?;
    let t = NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let (s, us) = (t.second(), t.nanosecond() / 1000);
    let (y, mo, d, h, mi) = (t.year(), t.month(), t.day(), t.hour(), t.minute());
    // Python's repr leaves out a zero microsecond, then a zero second.
    let mut at = format!("datetime.datetime({y}, {mo}, {d}, {h}, {mi}");
    if s + us > 0 {
        let _ = write!(at, ", {s}");
    }
    if us > 0 {
        let _ = write!(at, ", {us}");
    }
    at.push(')');
    let mut entity = event["data"].as_object()?.clone();
    entity.insert("last_modified".into(), json!("@at@"));
    entity.insert("sync_status".into(), json!("synced"));
    entity.insert("version".into(), json!(2));
    let done = json!({"success": true, "data": entity, "conflict_resolved": false});
    let update = [
        format!("Processing sync event: {}", py(event)),
        format!(
            "Published external sync event for {}",
            event["entity_id"].as_str()?
        ),
        format!(
            "Sync operation completed: {}",
            py(&done).replace("'@at@'", &at)
        ),
    ];
    let mut deleted = event.clone();
    deleted["operation"] = json!("delete");
    let delete = [
        format!("Processing sync event: {}", py(&deleted)),
        "Sync operation completed: {'success': True, 'operation': 'delete'}".into(),
    ];
    let bytes = |lines: &[String]| lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64;
    Some((bytes(&update), bytes(&delete)))
}

/// Python's `repr` of the bench's JSON: single quotes, a space after each
/// `:` and `,` (its strings hold no quote, `':` or `,'`), `True`, `False`.
fn py(v: &Value) -> String {
    let s = v
        .to_string()
        .replace('"', "'")
        .replace("':", "': ")
        .replace(",'", ", '");
    s.replace(": true", ": True").replace(": false", ": False")
}

/// The cost table (old, new, the recipe, each line's share of new's total);
/// empty when the direct path's mix did not run.
pub fn table(cases: &[Case]) -> String {
    let e2e = cases.iter().filter(|c| c.item == "end_to_end");
    let audit = e2e
        .filter_map(|c| c.median("cpu_ms_per_event_audit"))
        .next();
    let audit = audit.unwrap_or(AUDIT_CPU_MS);
    // An update of the mix as the direct runs send it.
    let event =
        crate::bodies::Spec::new(200, "direct-c16200entitiesmix-new-r1".into(), true).event(1042);
    let logs = serde_json::from_str(&event)
        .ok()
        .as_ref()
        .and_then(recipe_log_bytes);
    let (Some((update_log, delete_log)), event_bytes) = (logs, event.len() as f64) else {
        return String::new();
    };
    let measured = |which: &'static str| {
        let f = move |m: &str| figure(cases, "direct", which, CASE, m);
        let get = move |m: &str| match m {
            "audit_cpu_ms" => audit,
            "event_bytes" => event_bytes,
            _ => f(m).unwrap_or(0.0),
        };
        f("datastore_keys_looked_up_per_event")
            .and(f("publish_rpcs_per_event"))
            .map(|_| bill(get))
    };
    // The recipe on the same mix; its CPU is the old binary's (the code the
    // ratio was measured against; new's without a baseline) over ours.
    let ours = ["old", "new"]
        .iter()
        .find_map(|w| figure(cases, "direct", w, CASE, "cpu_ms_per_event"));
    let recipe_cpu = ours.unwrap_or(0.0) * RECIPE_SYNC_CPU_PER_OURS;
    let deletes = 1.0 / crate::bodies::MIX_PERIOD as f64;
    let changes = 1.0 - deletes;
    let recipe_log = changes * update_log + deletes * delete_log;
    let recipe = |m: &str| match m {
        "cpu_ms_per_event" => recipe_cpu,
        "audit_cpu_ms" => audit * RECIPE_AUDIT_CPU_PER_OURS,
        "event_bytes" => event_bytes,
        "datastore_keys_looked_up_per_event" => 1.0,
        "datastore_entity_deletes_per_event" => deletes,
        // One publish request per change, each under 1,000 B: the minimum is billed.
        "publish_bytes_per_event" => changes * PUBSUB_MIN_BYTES,
        "log_bytes_per_event" => recipe_log,
        "apply_conflict_records_per_event" => 0.0,
        _ => changes, // writes, publish RPCs, announcements
    };
    let bills = [measured("old"), measured("new"), ours.map(|_| bill(recipe))];
    let Some(new) = bills[1] else {
        return String::new();
    };
    let total = bills.map(|b| b.map(|b| b.iter().sum::<f64>()));
    let money = |d: Option<f64>| match d {
        Some(d) if d >= 1.0 => format!("${d:.2}"),
        Some(d) => format!("${d:.4}"),
        None => "–".into(),
    };
    let mut out = String::from("| cost per million events | old | new | recipe | share of new |\n");
    out.push_str("|---|---|---|---|---|\n");
    for (n, what) in LINES.iter().enumerate() {
        let [old, new_cell, recipe] = bills.map(|b| money(b.map(|b| b[n])));
        let share = new[n] / new.iter().sum::<f64>() * 100.0;
        let _ = writeln!(
            out,
            "| {what} | {old} | {new_cell} | {recipe} | {share:.0} % |"
        );
    }
    let [old, new, recipe] = total.map(money);
    let _ = writeln!(out, "| **total** | {old} | **{new}** | {recipe} | 100 % |");
    let (cpu, log, audit) = (num(recipe_cpu), num(recipe_log), num(audit));
    let _ = writeln!(
        out,
        "\nThe recipe per event: {cpu} ms of sync CPU, {log} B of log ({update_log} B per update, \
         {delete_log} B per delete). Our audit CPU: {audit} ms. Event: {event_bytes} B."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::group;

    #[test]
    fn each_line_is_its_units_times_its_list_price() {
        let b = bill(|m| match m {
            "cpu_ms_per_event" => 0.15,
            "datastore_keys_looked_up_per_event" => 2.0,
            "datastore_entity_writes_per_event" => 1.1,
            "apply_conflict_records_per_event" => 0.1,
            "publish_rpcs_per_event" => 0.25,
            "publish_bytes_per_event" => 400.0,
            "pubsub_messages_handed_per_event" => 1.0,
            _ => 0.0,
        });
        // 0.15 ms at 60 % is 0.25 ms of instance time: 250 vCPU-s and 62.5 GiB-s per million.
        let run = 250.0 * 0.000_024 + 62.5 * 0.000_002_5;
        // Three 1,000-byte minimums for the event, 400 B for 0.25 publish RPCs
        // (more than their minimum), 1,000 for the announcement's delivery.
        let pubsub = 4400.0 * 40.0 / 1_099_511_627_776.0 * 1e6;
        let want = [run, 0.0, 0.80, 1.20, 1.80, 0.18, 0.0, pubsub, 0.0];
        for ((what, got), want) in LINES.iter().zip(b).zip(want) {
            assert!((got - want).abs() < 1e-9, "{what}: {got} against {want}");
        }
    }

    #[test]
    fn the_recipe_logs_what_python_prints() {
        // What Python 3 prints for this event with the recipe's f-strings, in bytes.
        let event = json!({"entity_id": "e-00042", "operation": "update", "source": "bench",
            "timestamp": "2026-11-26T06:59:00.000005", "data": {"rev": "x", "status": "active"}});
        assert_eq!(recipe_log_bytes(&event), Some((433.0, 242.0)));
    }

    #[test]
    fn the_recipe_reads_once_and_takes_the_old_binarys_cpu_over_the_ratio() -> anyhow::Result<()> {
        let counts = r#""datastore_keys_looked_up_per_event":1.05,"publish_rpcs_per_event":0.2"#;
        let line = |which, cpu| {
            format!(
                r#"{{"item":"direct","case":"{which}: {CASE}","cpu_ms_per_event":{cpu},{counts}}}"#
            )
        };
        let table = table(&group(&format!(
            "{}\n{}",
            line("old", 0.3),
            line("new", 0.15)
        ))?);
        // Reads: 1.05 per event for both binaries, 1 for the recipe.
        let reads = "| Datastore entity reads | $0.6300 | $0.6300 | $0.6000 |";
        // The recipe's CPU: 0.3 ms ÷ 0.15 = 2 ms, at 60 %, 256 MiB.
        let run = format!(
            "| ${:.4} |",
            2.0 / 0.6 * (0.000_024 + 0.25 * 0.000_002_5) * 1e3
        );
        assert!(table.contains(reads) && table.contains(&run), "{table}");
        Ok(())
    }
}
