//! Push bodies for wrk, every one different, at almost no cost per request.
//!
//! A realistic push body carries the event base64-encoded, and every request
//! should be a new event (new message id, entity cycling, newer timestamp) so
//! the sync function does real work instead of answering duplicates. Encoding
//! base64 in wrk's Lua for every request would steal CPU from the server on a
//! 2-core machine, and a pre-generated set of whole bodies large enough for a
//! run at tens of thousands of requests per second would not fit in memory.
//!
//! Base64 maps every 3 input bytes to 4 output characters on its own, so the
//! encoding of a concatenation is the concatenation of the encodings when
//! every part but the last is a multiple of 3 bytes long. The event JSON is
//! therefore cut into parts of such lengths (padded with JSON whitespace
//! between tokens where needed), each part is encoded once here, and the Lua
//! script only concatenates encoded parts:
//!
//! ```text
//! A[entity]                         {"entity_id":"P-00042",...,"timestamp":"20
//! B[minute]  C[second.milli]  D[micro]   26-11-26T07:05:  12.345  678",␠
//! F                                 "data":{"rev":"20
//! B  C  D  again                    (rev = the timestamp: every event changes a field)
//! E                                 "name":"Bench item",...,"description":"xxx…"}}
//! ```
//!
//! Request `k` of a run uses entity `k mod entities` and the timestamp
//! `base + offset + k µs`, so timestamps grow with `k` and every event is an
//! effective change. Every event is an update, unless the mix is on
//! ([`Spec::mix`]): then each entity's first event creates it, and of every
//! [`MIX_PERIOD`] rounds over the entities after that one deletes each
//! entity and the next creates it again; the rest update. Each table is emitted as one string of fixed-width
//! entries, split by the Lua script at start (a Lua table constructor with
//! 60,000 string constants would exceed LuaJIT's constant limit).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Timelike, Utc};
use std::fmt::Write as _;

/// Minutes of timestamps the B table covers from the base time.
pub const MINUTES: usize = 120;
/// Entries of the C table: seconds 00–59 with milliseconds.
const SECOND_MILLIS: usize = 60_000;
/// Entries of the D table: microseconds 000–999.
const MICROS: usize = 1000;
/// With the mix, rounds per delete and re-create: 5 % deletes.
pub const MIX_PERIOD: u64 = 20;
/// Operations in the order of the A table's blocks.
const OPERATIONS: [&str; 3] = ["update", "create", "delete"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Number of distinct entities (at most 99,999).
    pub entities: usize,
    /// Prefix of entity ids (`PREFIX-00042`).
    pub entity_prefix: String,
    /// Length of the `description` field in bytes (0: none).
    pub payload_bytes: usize,
    /// Project in the subscription path.
    pub project: String,
    /// Subscription id in the envelope.
    pub subscription: String,
    /// Time of offset 0 (whole minute; must be in the past).
    pub base: DateTime<Utc>,
    /// Creates and deletes among the updates (see the module doc).
    pub mix: bool,
}

/// The encoded parts.
#[derive(Debug, Clone)]
pub struct Pieces {
    /// Envelope before the data.
    pub env_pre: String,
    /// Envelope between data and message id.
    pub env_mid: String,
    /// Envelope after the message id.
    pub env_post: String,
    /// Per entity: updates; with the mix, then creates, then deletes.
    pub a: Vec<String>,
    /// Distinct entities.
    pub entities: usize,
    /// Whether the A table holds the mix.
    pub mix: bool,
    /// Per minute from the base.
    pub b: Vec<String>,
    /// Per second and millisecond.
    pub c: Vec<String>,
    /// Per microsecond.
    pub d: Vec<String>,
    /// Between the timestamp and the `rev` value.
    pub f: String,
    /// The rest of the data.
    pub e: String,
}

/// Pads `head` with spaces so that `head + pad + tail` is a multiple of 3 bytes.
fn aligned(head: &str, tail: &str) -> String {
    let pad = (3 - (head.len() + tail.len()) % 3) % 3;
    format!("{head}{}{tail}", " ".repeat(pad))
}

fn encode(raw: &str) -> String {
    debug_assert_eq!(raw.len() % 3, 0, "part not aligned: {raw:?}");
    STANDARD.encode(raw.as_bytes())
}

/// Builds the parts for `spec`.
///
/// # Errors
/// When the spec is out of range.
pub fn build(spec: &Spec) -> anyhow::Result<Pieces> {
    anyhow::ensure!(
        (1..=99_999).contains(&spec.entities),
        "entities must be 1..=99999"
    );
    anyhow::ensure!(
        spec.base.second() == 0 && spec.base.nanosecond() == 0,
        "the base time must be a whole minute"
    );
    let operations = if spec.mix {
        &OPERATIONS[..]
    } else {
        &OPERATIONS[..1]
    };
    let a = operations
        .iter()
        .flat_map(|op| (0..spec.entities).map(move |e| (op, e)))
        .map(|(op, e)| {
            let head = format!(
                r#"{{"entity_id":"{p}-{e:05}","operation":"{op}","source":"bench","correlation_id":"bench-{p}","#,
                p = spec.entity_prefix
            );
            encode(&aligned(&head, r#""timestamp":"20"#))
        })
        .collect();
    let b = (0..MINUTES)
        .map(|m| {
            let t = spec.base + Duration::minutes(i64::try_from(m).unwrap_or(0));
            encode(&t.format("%y-%m-%dT%H:%M:").to_string())
        })
        .collect();
    let c = (0..SECOND_MILLIS)
        .map(|i| encode(&format!("{:02}.{:03}", i / 1000, i % 1000)))
        .collect();
    let d = (0..MICROS)
        .map(|u| encode(&format!("{u:03}\", ")))
        .collect();
    let f = encode(&aligned("", r#""data":{"rev":"20"#));
    let mut rest = String::from(r#""name":"Bench item","status":"active""#);
    if spec.payload_bytes > 0 {
        write!(
            rest,
            r#","description":"{}""#,
            "x".repeat(spec.payload_bytes)
        )?;
    }
    let e = encode(&aligned(&rest, "}}"));
    Ok(Pieces {
        env_pre: r#"{"message":{"data":""#.into(),
        env_mid: r#"","messageId":""#.into(),
        env_post: format!(
            r#"","publishTime":"{}","attributes":{{"origin":"bench"}}}},"subscription":"projects/{}/subscriptions/{}"}}"#,
            spec.base.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            spec.project,
            spec.subscription
        ),
        a,
        entities: spec.entities,
        mix: spec.mix,
        b,
        c,
        d,
        f,
        e,
    })
}

/// The A table's block for request `k` (0 update, 1 create, 2 delete); the
/// Lua script computes the same.
pub fn operation(k: u64, entities: u64, mix: bool) -> u64 {
    let round = k / entities.max(1);
    if !mix {
        0
    } else if round == 0 {
        1
    } else {
        match (round - 1) % MIX_PERIOD {
            r if r == MIX_PERIOD / 2 - 1 => 2,
            r if r == MIX_PERIOD / 2 => 1,
            _ => 0,
        }
    }
}

/// Request `k` of a run (what the Lua script builds), for tests and for
/// anyone who wants to see a body.
pub fn body(p: &Pieces, k: u64, offset_us: u64, run: &str) -> Option<String> {
    let us = offset_us + k;
    let minute = usize::try_from(us / 60_000_000).ok()?;
    let rem = us % 60_000_000;
    let c = usize::try_from(rem / 1000).ok()?;
    let u = usize::try_from(rem % 1000).ok()?;
    let entities = p.entities as u64;
    let op = operation(k, entities, p.mix);
    let e = usize::try_from(op * entities + k % entities).ok()?;
    let ts = format!("{}{}{}", p.b.get(minute)?, p.c.get(c)?, p.d.get(u)?);
    Some(format!(
        "{}{}{ts}{}{ts}{}{}{run}-{k}{}",
        p.env_pre,
        p.a.get(e)?,
        p.f,
        p.e,
        p.env_mid,
        p.env_post
    ))
}

/// A Lua string literal.
fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Fixed-width table: (concatenated entries, width).
fn packed(entries: &[String]) -> anyhow::Result<(String, usize)> {
    let width = entries.first().map_or(0, String::len);
    anyhow::ensure!(
        entries.iter().all(|s| s.len() == width),
        "entries of one table must have the same width"
    );
    Ok((entries.concat(), width))
}

/// The Lua chunk `scripts/bench/push.lua` loads with `dofile`.
///
/// # Errors
/// When a table's entries differ in width.
pub fn to_lua(p: &Pieces) -> anyhow::Result<String> {
    let mut out = String::from(
        "-- generated by sync-bench pieces; see crates/sync-bench/src/pieces.rs\nreturn {\n",
    );
    writeln!(
        out,
        "  entities = {},\n  mix = {},",
        p.entities,
        if p.mix { MIX_PERIOD } else { 0 }
    )?;
    for (name, value) in [
        ("env_pre", &p.env_pre),
        ("env_mid", &p.env_mid),
        ("env_post", &p.env_post),
        ("F", &p.f),
        ("E", &p.e),
    ] {
        writeln!(out, "  {name} = {},", lua_str(value))?;
    }
    for (name, table) in [("A", &p.a), ("B", &p.b), ("C", &p.c), ("D", &p.d)] {
        let (all, width) = packed(table)?;
        writeln!(
            out,
            "  {name} = {{ width = {width}, count = {}, all = {} }},",
            table.len(),
            lua_str(&all)
        )?;
    }
    out.push_str("}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;
    use sync_core::{parse_event, ValidationLimits};

    fn spec(payload_bytes: usize) -> Spec {
        Spec {
            entities: 7,
            entity_prefix: "t1".into(),
            payload_bytes,
            project: "p".into(),
            subscription: "sync-processor".into(),
            base: Utc
                .with_ymd_and_hms(2026, 11, 26, 6, 59, 0)
                .single()
                .expect("valid"),
            mix: false,
        }
    }

    fn event_of(body: &str) -> (Value, Vec<u8>) {
        let envelope: Value = serde_json::from_str(body).expect("envelope is JSON");
        let data = envelope["message"]["data"].as_str().expect("data");
        let raw = STANDARD.decode(data).expect("valid base64");
        (envelope, raw)
    }

    #[test]
    fn every_body_is_a_valid_push_of_a_valid_event() {
        for payload in [0, 1, 1024] {
            let p = build(&spec(payload)).expect("built");
            let now = Utc::now();
            for k in [
                0u64,
                1,
                6,
                7,
                999,
                1000,
                59_999_999,
                60_000_000,
                3_599_999_999,
            ] {
                let body = body(&p, k, 0, "r1").expect("in range");
                let (envelope, raw) = event_of(&body);
                assert_eq!(envelope["message"]["messageId"], format!("r1-{k}"));
                let event =
                    parse_event(&raw, "m", &ValidationLimits::default(), now).expect("valid event");
                assert_eq!(event.entity_id.as_str(), format!("t1-{:05}", k % 7));
                let json: Value = serde_json::from_slice(&raw).expect("JSON");
                assert_eq!(json["data"]["rev"], json["timestamp"]);
                let len = json["data"]["description"].as_str().map_or(0, str::len);
                assert_eq!(len, payload);
            }
        }
    }

    #[test]
    fn timestamps_grow_with_the_request_number_across_minutes_and_hours() {
        let p = build(&spec(0)).expect("built");
        let ts = |k: u64| {
            let (_, raw) = event_of(&body(&p, k, 5, "r").expect("in range"));
            let json: Value = serde_json::from_slice(&raw).expect("JSON");
            json["timestamp"].as_str().expect("timestamp").to_string()
        };
        assert_eq!(ts(0), "2026-11-26T06:59:00.000005");
        assert_eq!(ts(59_999_995), "2026-11-26T07:00:00.000000");
        assert_eq!(ts(61_234_562), "2026-11-26T07:00:01.234567");
        assert!(ts(10) < ts(11));
    }

    #[test]
    fn the_mix_creates_each_entity_then_deletes_and_recreates_it_each_period() {
        let p = build(&Spec {
            mix: true,
            ..spec(0)
        })
        .expect("built");
        let now = Utc::now();
        let op = |k: u64| {
            let (_, raw) = event_of(&body(&p, k, 0, "r").expect("in range"));
            let e = parse_event(&raw, "m", &ValidationLimits::default(), now).expect("valid event");
            (e.entity_id.as_str().to_string(), e.operation.as_str())
        };
        assert_eq!(op(3), ("t1-00003".into(), "create"));
        assert_eq!(op(7 + 3), ("t1-00003".into(), "update"));
        assert_eq!(op(7 * 10 + 3), ("t1-00003".into(), "delete"));
        assert_eq!(op(7 * 11 + 3), ("t1-00003".into(), "create"));
        assert_eq!(op(7 * 12 + 3), ("t1-00003".into(), "update"));
        assert_eq!(op(7 * 30 + 3), ("t1-00003".into(), "delete"));
        let n = 7 * 201;
        let deletes = (0..n).filter(|&k| operation(k, 7, true) == 2).count();
        assert_eq!(deletes, 7 * 10, "one round in 20");
    }

    #[test]
    fn out_of_range_requests_give_none() {
        let p = build(&spec(0)).expect("built");
        let beyond = (MINUTES as u64) * 60_000_000;
        assert!(body(&p, beyond, 0, "r").is_none());
    }

    #[test]
    fn lua_tables_are_fixed_width() {
        let p = build(&spec(10)).expect("built");
        let lua = to_lua(&p).expect("lua");
        assert!(lua.contains("C = { width = 8, count = 60000,"));
        assert!(lua.contains("D = { width = 8, count = 1000,"));
        assert!(lua.contains("B = { width = 20, count = 120,"));
        assert!(lua.contains(r#"env_pre = "{\"message\":{\"data\":\"","#));
    }
}
