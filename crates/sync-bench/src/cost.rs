//! The cost model: dollars per million events on Cloud Run, Datastore and
//! Pub/Sub (and Cloud Logging, which the audit trail and the sync log are
//! written to), from what item 8 measured at 16 concurrent requests over 200
//! entities and the list prices below.
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

use crate::compare::{case_name, figure};
use crate::report::{num, Case};
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

/// What the model needs per event, for one binary.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Sync process CPU, ms.
    pub sync_cpu_ms: f64,
    /// Audit process CPU, ms (from the end-to-end item, when it ran).
    pub audit_cpu_ms: Option<f64>,
    /// Keys looked up, entities written and deleted.
    pub reads: f64,
    pub writes: f64,
    pub deletes: f64,
    /// Publish RPCs and their request bytes, as counted on the wire.
    pub publishes: f64,
    pub publish_bytes: f64,
    /// Bytes of the event message (data).
    pub event_bytes: f64,
    /// Log bytes the sync function wrote.
    pub log_bytes: f64,
}

/// One line of the bill, per million events.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub what: &'static str,
    pub dollars: f64,
}

/// The bill per million events of a busy service, line by line.
pub fn bill(i: &Inputs) -> Vec<Line> {
    let instance_s = |cpu_ms: f64| cpu_ms / 1000.0 / TARGET_UTILIZATION;
    let sync_s = instance_s(i.sync_cpu_ms);
    let mut lines = vec![
        Line {
            what: "Cloud Run sync: vCPU-seconds",
            dollars: sync_s * VCPU_SECOND * MILLION,
        },
        Line {
            what: "Cloud Run sync: GiB-seconds",
            dollars: sync_s * SYNC_MEMORY_GIB * GIB_SECOND * MILLION,
        },
    ];
    if let Some(audit) = i.audit_cpu_ms {
        let audit_s = instance_s(audit);
        lines.push(Line {
            what: "Cloud Run audit: vCPU- and GiB-seconds",
            dollars: audit_s * (VCPU_SECOND + AUDIT_MEMORY_GIB * GIB_SECOND) * MILLION,
        });
    }
    // The announcement, per message: its share of the publish requests.
    let announcement = i.publish_bytes;
    let pubsub_bytes = 3.0 * i.event_bytes.max(PUBSUB_MIN_BYTES)
        + i.publish_bytes.max(PUBSUB_MIN_BYTES * i.publishes)
        + announcement.max(PUBSUB_MIN_BYTES);
    lines.extend([
        Line {
            what: "Cloud Run requests (sync and audit pushes)",
            dollars: 2.0 * PER_REQUEST * MILLION,
        },
        Line {
            what: "Datastore entity reads",
            dollars: i.reads * READ * MILLION,
        },
        Line {
            what: "Datastore entity writes",
            dollars: i.writes * WRITE * MILLION,
        },
        Line {
            what: "Datastore entity deletes",
            dollars: i.deletes * DELETE * MILLION,
        },
        Line {
            what: "Pub/Sub throughput",
            dollars: pubsub_bytes * PUBSUB_PER_BYTE * MILLION,
        },
        Line {
            what: "Cloud Logging (the sync function's log)",
            dollars: i.log_bytes * LOGGING_PER_BYTE * MILLION,
        },
    ]);
    lines
}

/// Cloud Run's vCPU- and GiB-seconds when every event is alone on its
/// instance: 100 ms billed each, whatever the CPU.
pub fn sparse_floor() -> f64 {
    BILLING_GRANULARITY_S * (VCPU_SECOND + SYNC_MEMORY_GIB * GIB_SECOND) * MILLION
}

/// The inputs for `which` from item 8's c=16 case; the Datastore counts are
/// new's own (the old binary runs the same reads and writes per event, one
/// event per transaction, and does not count them).
pub fn inputs(cases: &[Case], which: &str) -> Option<Inputs> {
    let case = case_name(16, 200);
    let f = |item: &str, metric: &str| figure(cases, item, which, &case, metric);
    let own = |metric: &str| figure(cases, "direct", "new", &case, metric);
    Some(Inputs {
        sync_cpu_ms: f("direct", "cpu_ms_per_event")?,
        audit_cpu_ms: cases
            .iter()
            .filter(|c| c.item == "e2e")
            .find_map(|c| c.median("cpu_ms_per_event_audit")),
        reads: own("fn_datastore_keys_looked_up_per_event")?,
        writes: own("fn_datastore_entity_writes_per_event")?,
        deletes: own("fn_datastore_entity_deletes_per_event").unwrap_or(0.0),
        publishes: f("direct_rpc", "wire_{which}_pubsub_calls_per_event")?,
        publish_bytes: f("direct_rpc", "wire_{which}_pubsub_request_bytes_per_event")?,
        event_bytes: cases
            .iter()
            .find(|c| c.item == "direct_sizes" && c.case == "event")
            .and_then(|c| c.median("bytes"))?,
        log_bytes: f("direct", "log_bytes_per_event")?,
    })
}

/// The cost table, old against new, each line's share of new's total and
/// what dominates; empty when item 8 did not measure enough.
pub fn table(cases: &[Case]) -> String {
    let Some(new) = inputs(cases, "new") else {
        return String::new();
    };
    let new_bill = bill(&new);
    let old_bill = inputs(cases, "old").map(|i| bill(&i));
    let total = |b: &[Line]| b.iter().map(|l| l.dollars).sum::<f64>();
    let new_total = total(&new_bill);
    let money = |d: f64| {
        if d >= 1.0 {
            format!("${d:.2}")
        } else {
            format!("${d:.4}")
        }
    };
    let mut out = String::from(
        "| cost per million events (busy service) | old | new | share of new |\n|---|---|---|---|\n",
    );
    for (n, line) in new_bill.iter().enumerate() {
        let old = old_bill
            .as_ref()
            .and_then(|b| b.get(n))
            .map_or_else(|| "–".into(), |l| money(l.dollars));
        let _ = writeln!(
            out,
            "| {} | {old} | {} | {:.0} % |",
            line.what,
            money(line.dollars),
            line.dollars / new_total * 100.0
        );
    }
    let _ = writeln!(
        out,
        "| **total** | {} | **{}** | 100 % |",
        old_bill
            .as_ref()
            .map_or_else(|| "–".into(), |b| money(total(b))),
        money(new_total)
    );
    let _ = writeln!(
        out,
        "| Cloud Run sync if every event were alone on its instance (100 ms billed each) | {0} | {0} | |",
        money(sparse_floor())
    );
    let mut ranked: Vec<&Line> = new_bill.iter().collect();
    ranked.sort_by(|a, b| b.dollars.total_cmp(&a.dollars));
    let datastore: f64 = new_bill
        .iter()
        .filter(|l| l.what.starts_with("Datastore"))
        .map(|l| l.dollars)
        .sum();
    let _ = writeln!(
        out,
        "\nInputs (new, per event): {} ms sync CPU, {} keys read, {} writes, {} deletes, \
         {} publish RPCs carrying {} B, event {} B, {} B of log. \
         Largest line: {}; Datastore together {:.0} % of the total.",
        num(new.sync_cpu_ms),
        num(new.reads),
        num(new.writes),
        num(new.deletes),
        num(new.publishes),
        num(new.publish_bytes),
        num(new.event_bytes),
        num(new.log_bytes),
        ranked.first().map_or("–", |l| l.what),
        datastore / new_total * 100.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            sync_cpu_ms: 0.15,
            audit_cpu_ms: None,
            reads: 2.0,
            writes: 1.0,
            deletes: 0.0,
            publishes: 0.25,
            publish_bytes: 400.0,
            event_bytes: 300.0,
            log_bytes: 600.0,
        }
    }

    fn line(b: &[Line], what: &str) -> f64 {
        b.iter()
            .find(|l| l.what == what)
            .map(|l| l.dollars)
            .unwrap_or_else(|| panic!("no line {what}"))
    }

    #[test]
    fn each_line_is_its_units_times_its_list_price() {
        let b = bill(&inputs());
        // 0.15 ms at 60 % is 0.25 ms of instance time: 250 vCPU-s per million.
        assert!((line(&b, "Cloud Run sync: vCPU-seconds") - 250.0 * 0.000_024).abs() < 1e-9);
        assert!((line(&b, "Datastore entity reads") - 20.0 * 0.06).abs() < 1e-9);
        assert!((line(&b, "Datastore entity writes") - 10.0 * 0.18).abs() < 1e-9);
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
}
