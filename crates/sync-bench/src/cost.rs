//! The cost model: dollars per million events on Cloud Run, Datastore and
//! Pub/Sub (and Cloud Logging, which the audit trail and the sync log are
//! written to), from what item 8 measured at 16 concurrent requests over 200
//! entities (updates, 10 % creates, 5 % deletes: `pieces`' mix) and the list
//! prices below, for the old binary, the new one and the recipe.
//!
//! Prices are USD list prices as published in December 2026, before free
//! tiers (which a busy deployment exhausts in its first days):
//! - Cloud Run, request-based billing, tier 1: $0.000024 per vCPU-second,
//!   $0.0000025 per GiB-second, $0.40 per million requests; billed time is
//!   every moment an instance has a request in flight (concurrent requests
//!   share it), rounded up to 100 ms.
//! - Firestore in Datastore mode, multi-region `nam5`: $0.06 per 100,000
//!   entity reads, $0.18 per 100,000 writes, $0.02 per 100,000 deletes.
//!   Single-region prices are about half; the pricing page no longer lists
//!   them as text, so the model uses `nam5`.
//! - Pub/Sub: $40 per TiB, publish and delivery each, at least 1,000 bytes
//!   per publish, push or pull request.
//! - Cloud Logging: $0.50 per GiB ingested.
//!
//! How measured figures become billed units:
//! - Cloud Run bills instance time, not CPU used. Its autoscaler adds
//!   instances to keep their CPU near 60 %, so a busy service is billed about
//!   CPU ÷ 0.6 vCPU-seconds per event; memory is billed for the same instance
//!   time at the size `deploy/services.sh` gives (256 MiB sync, 128 MiB
//!   audit). A service idle between lone events pays at least 100 ms per
//!   event instead, whatever its CPU; that is the floor the table shows last.
//! - Every key a lookup asks for counts as an entity read, found or not (the
//!   pricing pages do not say that a missing key is free).
//! - Pub/Sub: the event is published once and pushed to the sync and audit
//!   subscriptions; each announcement is published (in batches, as counted on
//!   the wire) and delivered to one downstream subscriber by push.
//! - Conflict records are entity writes: they are counted by the store
//!   (new only) and shown apart at the bench's rate.
//! - Our audit function's CPU comes from the end-to-end item when it ran,
//!   else from the issue's measurement (0.050 ms per event).
//!
//! The recipe (`seed/recipe.md`, Step 4's `main.py`), on the same mix and
//! through the same conversion:
//! - CPU: measured on the same emulators and workload, ours was 0.15× the
//!   recipe's in the sync function (0.435 ms against 2.97 ms; 1.70 ms in a
//!   quieter run) and 0.078× in the audit function (0.050 against 0.64 ms),
//!   so its CPU is the old binary's (the code that was measured) ÷ 0.15 and
//!   our audit's ÷ 0.078. The same conversion (CPU ÷ 0.6) favours it: it
//!   deploys as Cloud Functions with one request per instance, which pays
//!   each request's whole duration, waits on Datastore included.
//! - Datastore: a create or update reads the entity and writes it; a delete
//!   reads it and deletes it (the mix deletes only entities that exist); no
//!   tombstones, no conflict records.
//! - Pub/Sub: every create or update is announced (deletes are not), with
//!   the client's default batching (10 ms, 100 messages) waiting for
//!   nothing; one request per announcement, since each instance handles one
//!   event at a time, each under 1,000 B and so billed at the minimum.
//! - Logging: what its Python `logging` calls write per event (`bench.sh`
//!   formats them from the bench's event with the recipe's own f-strings):
//!   the whole event, the "published" line, then the result with the
//!   entity's data; a delete logs the event and a short result. The model
//!   assumes they are emitted (Python's root logger drops `INFO` unless the
//!   runtime configures it).

use crate::compare::{case_name, figure};
use crate::report::{num, Case, Target};
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
/// Memory of the services as `deploy/services.sh` deploys them, GiB.
const SYNC_MEMORY_GIB: f64 = 0.25;
const AUDIT_MEMORY_GIB: f64 = 0.125;
/// Cloud Run's billing granularity, seconds.
const BILLING_GRANULARITY_S: f64 = 0.1;
const MILLION: f64 = 1e6;

/// What the model needs per event, for one binary (or the recipe).
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Sync process CPU, ms.
    pub sync_cpu_ms: f64,
    /// Audit process CPU, ms.
    pub audit_cpu_ms: f64,
    /// Keys looked up, entities written (conflict records included) and
    /// deleted.
    pub reads: f64,
    pub writes: f64,
    pub deletes: f64,
    /// Of the writes, conflict records (`None`: not counted apart).
    pub conflict_records: Option<f64>,
    /// Publish RPCs and their request bytes, as counted on the wire.
    pub publishes: f64,
    pub publish_bytes: f64,
    /// Announcements delivered downstream.
    pub announcements: f64,
    /// Bytes of the event message (data).
    pub event_bytes: f64,
    /// Log bytes the sync function wrote.
    pub log_bytes: f64,
}

/// One line of the bill, per million events (`None`: not counted apart).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub what: &'static str,
    pub dollars: Option<f64>,
}

/// The bill per million events of a busy service, line by line.
pub fn bill(i: &Inputs) -> Vec<Line> {
    let instance_s = |cpu_ms: f64| cpu_ms / 1000.0 / TARGET_UTILIZATION;
    let sync_s = instance_s(i.sync_cpu_ms);
    let audit_s = instance_s(i.audit_cpu_ms);
    // The event is published once and pushed twice; each publish request
    // and each announcement's delivery pays at least the minimum.
    let pubsub_bytes = 3.0 * i.event_bytes.max(PUBSUB_MIN_BYTES)
        + i.publish_bytes.max(PUBSUB_MIN_BYTES * i.publishes)
        + (i.publish_bytes / i.announcements.max(1e-9)).max(PUBSUB_MIN_BYTES) * i.announcements;
    let line = |what, dollars| Line {
        what,
        dollars: Some(dollars),
    };
    vec![
        line(
            "Cloud Run sync: vCPU- and GiB-seconds",
            sync_s * (VCPU_SECOND + SYNC_MEMORY_GIB * GIB_SECOND) * MILLION,
        ),
        line(
            "Cloud Run audit: vCPU- and GiB-seconds",
            audit_s * (VCPU_SECOND + AUDIT_MEMORY_GIB * GIB_SECOND) * MILLION,
        ),
        line(
            "Cloud Run requests (sync and audit pushes)",
            2.0 * PER_REQUEST * MILLION,
        ),
        line("Datastore entity reads", i.reads * READ * MILLION),
        line(
            "Datastore entity writes (without conflict records)",
            (i.writes - i.conflict_records.unwrap_or(0.0)) * WRITE * MILLION,
        ),
        Line {
            what: "Datastore conflict records",
            dollars: i.conflict_records.map(|r| r * WRITE * MILLION),
        },
        line("Datastore entity deletes", i.deletes * DELETE * MILLION),
        line(
            "Pub/Sub throughput",
            pubsub_bytes * PUBSUB_PER_BYTE * MILLION,
        ),
        line(
            "Cloud Logging (the sync function's log)",
            i.log_bytes * LOGGING_PER_BYTE * MILLION,
        ),
    ]
}

/// Cloud Run's vCPU- and GiB-seconds when every event is alone on its
/// instance: 100 ms billed each, whatever the CPU.
pub fn sparse_floor() -> f64 {
    BILLING_GRANULARITY_S * (VCPU_SECOND + SYNC_MEMORY_GIB * GIB_SECOND) * MILLION
}

/// Our audit function's CPU per event when the end-to-end item did not
/// run: the issue's measurement (2,000 events over 200 entities), ms.
const AUDIT_CPU_MS: f64 = 0.050;
/// The recipe's CPU per event over ours, measured on the same emulators and
/// workload (2,000 events over 200 entities, 16 concurrent; its crash bugs
/// fixed): sync 2.97 ms against our 0.435 ms (ours 0.15×), audit 0.64 ms
/// against our 0.050 ms.
const RECIPE_SYNC_CPU_PER_OURS: f64 = 1.0 / 0.15;
const RECIPE_AUDIT_CPU_PER_OURS: f64 = 0.64 / 0.050;

fn audit_cpu(cases: &[Case]) -> f64 {
    cases
        .iter()
        .filter(|c| c.item == "e2e")
        .find_map(|c| c.median("cpu_ms_per_event_audit"))
        .unwrap_or(AUDIT_CPU_MS)
}

fn sizes(cases: &[Case], case: &str, metric: &str) -> Option<f64> {
    cases
        .iter()
        .find(|c| c.item == "direct_sizes" && c.case == case)
        .and_then(|c| c.median(metric))
}

/// The inputs for `which` from item 8's c=16 case, each from its own
/// counters (the old binary's Datastore counts are new's when it has none).
pub fn inputs(cases: &[Case], which: &str) -> Option<Inputs> {
    let case = case_name(16, 200);
    let f = |item: &str, metric: &str| figure(cases, item, which, &case, metric);
    let own = |metric: &str| {
        f("direct", metric).or_else(|| figure(cases, "direct", "new", &case, metric))
    };
    let publishes = f("direct_rpc", "wire_{which}_pubsub_calls_per_event")?;
    Some(Inputs {
        sync_cpu_ms: f("direct", "cpu_ms_per_event")?,
        audit_cpu_ms: audit_cpu(cases),
        reads: own("fn_datastore_keys_looked_up_per_event")?,
        writes: own("fn_datastore_entity_writes_per_event")?,
        deletes: own("fn_datastore_entity_deletes_per_event").unwrap_or(0.0),
        conflict_records: f("direct", "fn_apply_conflict_records_per_event"),
        publishes,
        publish_bytes: f("direct_rpc", "wire_{which}_pubsub_request_bytes_per_event")?,
        announcements: own("fn_pubsub_messages_handed_per_event").unwrap_or(1.0),
        event_bytes: sizes(cases, "event", "bytes")?,
        log_bytes: f("direct", "log_bytes_per_event")?,
    })
}

/// The recipe on the same mix (see the module doc for each assumption).
pub fn recipe(cases: &[Case]) -> Option<Inputs> {
    let case = case_name(16, 200);
    let ours = figure(cases, "direct", "old", &case, "cpu_ms_per_event")
        .or_else(|| figure(cases, "direct", "new", &case, "cpu_ms_per_event"))?;
    let deletes = 1.0 / crate::pieces::MIX_PERIOD as f64;
    let changes = 1.0 - deletes;
    let log = |op: &str| sizes(cases, "recipe_log", &format!("{op}_bytes"));
    Some(Inputs {
        sync_cpu_ms: ours * RECIPE_SYNC_CPU_PER_OURS,
        audit_cpu_ms: audit_cpu(cases) * RECIPE_AUDIT_CPU_PER_OURS,
        reads: 1.0,
        writes: changes,
        deletes,
        conflict_records: None,
        publishes: changes,
        // Under 1,000 B each: the minimum is what is billed.
        publish_bytes: changes * PUBSUB_MIN_BYTES,
        announcements: changes,
        event_bytes: sizes(cases, "event", "bytes")?,
        log_bytes: changes * log("update")? + deletes * log("delete")?,
    })
}

fn money(d: Option<f64>) -> String {
    match d {
        Some(d) if d >= 1.0 => format!("${d:.2}"),
        Some(d) => format!("${d:.4}"),
        None => "–".into(),
    }
}

fn total(b: &[Line]) -> f64 {
    b.iter().filter_map(|l| l.dollars).sum()
}

/// The cost table, old, new and the recipe, each line's share of new's
/// total and what dominates; empty when item 8 did not measure enough.
pub fn table(cases: &[Case]) -> String {
    let Some(new) = inputs(cases, "new") else {
        return String::new();
    };
    let new_bill = bill(&new);
    let old_bill = inputs(cases, "old").map(|i| bill(&i));
    let recipe_bill = recipe(cases).map(|i| bill(&i));
    let new_total = total(&new_bill);
    let cell = |b: &Option<Vec<Line>>, n: usize| money(b.as_ref().and_then(|b| b.get(n)?.dollars));
    let mut out = String::from(
        "| cost per million events (busy service) | old | new | recipe | share of new |\n|---|---|---|---|---|\n",
    );
    for (n, line) in new_bill.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} % |",
            line.what,
            cell(&old_bill, n),
            money(line.dollars),
            cell(&recipe_bill, n),
            line.dollars.unwrap_or(0.0) / new_total * 100.0
        );
    }
    let sum = |b: &Option<Vec<Line>>| money(b.as_deref().map(total));
    let _ = writeln!(
        out,
        "| **total** | {} | **{}** | {} | 100 % |",
        sum(&old_bill),
        money(Some(new_total)),
        sum(&recipe_bill)
    );
    let _ = writeln!(
        out,
        "| Cloud Run sync if every event were alone on its instance (100 ms billed each) | {0} | {0} | {0} | |",
        money(Some(sparse_floor()))
    );
    let mut ranked: Vec<&Line> = new_bill.iter().collect();
    ranked.sort_by(|a, b| {
        b.dollars
            .unwrap_or(0.0)
            .total_cmp(&a.dollars.unwrap_or(0.0))
    });
    let datastore: f64 = new_bill
        .iter()
        .filter(|l| l.what.starts_with("Datastore"))
        .filter_map(|l| l.dollars)
        .sum();
    let _ = writeln!(
        out,
        "\nInputs (new, per event): {} ms sync CPU, {} ms audit CPU, {} keys read, {} writes \
         ({} conflict records), {} deletes, {} publish RPCs carrying {} B, event {} B, {} B of log. \
         Largest line: {}; Datastore together {:.0} % of the total.",
        num(new.sync_cpu_ms),
        num(new.audit_cpu_ms),
        num(new.reads),
        num(new.writes),
        new.conflict_records.map_or_else(|| "–".into(), num),
        num(new.deletes),
        num(new.publishes),
        num(new.publish_bytes),
        num(new.event_bytes),
        num(new.log_bytes),
        ranked.first().map_or("–", |l| l.what),
        datastore / new_total * 100.0
    );
    if let Some(r) = recipe(cases) {
        let _ = writeln!(
            out,
            "Inputs (recipe, per event): {} ms sync CPU, {} ms audit CPU, {} reads, {} writes, \
             {} deletes, {} publish RPCs carrying {} B, {} B of log.",
            num(r.sync_cpu_ms),
            num(r.audit_cpu_ms),
            num(r.reads),
            num(r.writes),
            num(r.deletes),
            num(r.publishes),
            num(r.publish_bytes),
            num(r.log_bytes),
        );
    }
    out
}

/// The target: new's bill at or below the recipe's in the same model.
pub fn target(cases: &[Case]) -> Option<Target> {
    let new = total(&bill(&inputs(cases, "new")?));
    let recipe = recipe(cases).map(|r| total(&bill(&r)));
    Some(Target {
        name: "cost per million events, c=16, 200 entities".into(),
        goal: "≤ the recipe's in the same model".into(),
        measured: format!("{} against {}", money(Some(new)), money(recipe)),
        met: recipe.map(|r| new <= r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::group;

    fn inputs() -> Inputs {
        Inputs {
            sync_cpu_ms: 0.15,
            audit_cpu_ms: 0.0,
            reads: 2.0,
            writes: 1.1,
            deletes: 0.0,
            conflict_records: Some(0.1),
            publishes: 0.25,
            publish_bytes: 400.0,
            announcements: 1.0,
            event_bytes: 300.0,
            log_bytes: 600.0,
        }
    }

    fn line(b: &[Line], what: &str) -> f64 {
        b.iter()
            .find(|l| l.what == what)
            .and_then(|l| l.dollars)
            .unwrap_or_else(|| panic!("no line {what}"))
    }

    #[test]
    fn each_line_is_its_units_times_its_list_price() {
        let b = bill(&inputs());
        // 0.15 ms at 60 % is 0.25 ms of instance time: 250 vCPU-s and
        // 62.5 GiB-s per million.
        let run = 250.0 * 0.000_024 + 62.5 * 0.000_002_5;
        assert!((line(&b, "Cloud Run sync: vCPU- and GiB-seconds") - run).abs() < 1e-9);
        assert!((line(&b, "Datastore entity reads") - 20.0 * 0.06).abs() < 1e-9);
        let writes = line(&b, "Datastore entity writes (without conflict records)");
        assert!((writes - 10.0 * 0.18).abs() < 1e-9);
        assert!((line(&b, "Datastore conflict records") - 0.18).abs() < 1e-9);
        assert!((line(&b, "Cloud Run requests (sync and audit pushes)") - 0.80).abs() < 1e-9);
        // Three 1,000-byte minimums for the event, 1,000 per publish RPC
        // (0.25 × 1,000 < 400 B, so the bytes), 1,000 for the delivery.
        let bytes = 3000.0 + 400.0 + 1000.0;
        assert!(
            (line(&b, "Pub/Sub throughput") - bytes * 40.0 / 1_099_511_627_776.0 * 1e6).abs()
                < 1e-12
        );
    }

    #[test]
    fn unbatched_publishes_pay_the_minimum_per_request() {
        let batched = bill(&inputs());
        let alone = bill(&Inputs {
            publishes: 1.0,
            ..inputs()
        });
        let diff = line(&alone, "Pub/Sub throughput") - line(&batched, "Pub/Sub throughput");
        // 1,000 billed bytes instead of 400 per event.
        assert!((diff - 600.0 * 40.0 / 1_099_511_627_776.0 * 1e6).abs() < 1e-12);
    }

    const RAW: &str = r#"
{"item":"direct","case":"old: c=16, 200 entities","run":1,"cpu_ms_per_event":0.3,"log_bytes_per_event":660,"fn_datastore_keys_looked_up_per_event":2.0,"fn_datastore_entity_writes_per_event":1.05,"fn_datastore_entity_deletes_per_event":0.1}
{"item":"direct","case":"new: c=16, 200 entities","run":1,"cpu_ms_per_event":0.15,"log_bytes_per_event":300,"fn_datastore_keys_looked_up_per_event":1.05,"fn_datastore_entity_writes_per_event":1.05,"fn_datastore_entity_deletes_per_event":0.1,"fn_apply_conflict_records_per_event":0.0,"fn_pubsub_messages_handed_per_event":1.0}
{"item":"direct_rpc","case":"old: c=16, 200 entities","run":4,"wire_old_pubsub_calls_per_event":0.2,"wire_old_pubsub_request_bytes_per_event":380}
{"item":"direct_rpc","case":"new: c=16, 200 entities","run":4,"wire_new_pubsub_calls_per_event":0.2,"wire_new_pubsub_request_bytes_per_event":380}
{"item":"direct_sizes","case":"event","run":1,"bytes":225}
{"item":"direct_sizes","case":"recipe_log","run":1,"update_bytes":700,"delete_bytes":300}
"#;

    #[test]
    fn the_recipe_reads_once_writes_changes_and_is_compared() -> anyhow::Result<()> {
        let cases = group(RAW)?;
        let r = recipe(&cases).expect("recipe inputs");
        // Its CPU is the old binary's over 0.15; one read per event; writes
        // and announcements for the 95 % that are not deletes.
        assert!((r.sync_cpu_ms - 2.0).abs() < 1e-9, "{r:?}");
        assert!((r.reads - 1.0).abs() < 1e-9 && (r.writes - 0.95).abs() < 1e-9);
        assert!((r.log_bytes - (0.95 * 700.0 + 0.05 * 300.0)).abs() < 1e-9);
        let table = table(&cases);
        assert!(
            table.contains("| Datastore entity reads | $1.20 | $0.6300 | $0.6000 |"),
            "{table}"
        );
        let t = target(&cases).expect("target");
        assert_eq!(t.met, Some(true), "{t:?}");
        Ok(())
    }
}
