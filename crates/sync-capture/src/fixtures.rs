//! The fixtures in `fixtures/`, decoded and decided, every field checked.
//!
//! `fixtures/make_fixtures.py` builds each body with Google's published
//! Python types and writes beside it what protobuf reads back (`proto`) and
//! what the capture must make of it (`expect`). Here the same body goes
//! through [`crate::decode`] and [`crate::decide`]: the decoded message,
//! described in the script's form, must equal `proto`, the attributes must
//! equal the headers, and the decision must be `expect`.

use crate::event::{header, Change, EventType};
use crate::proto::{Entity, EntityEventData, EntityResult, IdType, Key, Value, ValueType};
use crate::{decide, decode, CaptureFilter, Decision, OwnKinds};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message as _;
use prost_types::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[derive(Deserialize)]
struct Sidecar {
    about: String,
    headers: BTreeMap<String, String>,
    body: String,
    proto: Option<Json>,
    expect: Json,
}

struct Fixture {
    name: String,
    sidecar: Sidecar,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load_all() -> Vec<Fixture> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("fixtures directory")
        .filter_map(|entry| {
            let name = entry.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text =
                std::fs::read_to_string(dir().join(format!("{name}.json"))).expect("sidecar");
            let sidecar: Sidecar = serde_json::from_str(&text).expect("sidecar JSON");
            let body = std::fs::read(dir().join(&sidecar.body)).expect("body file");
            let mut headers = HeaderMap::new();
            for (k, v) in &sidecar.headers {
                headers.insert(
                    HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                    HeaderValue::from_str(v).expect("header value"),
                );
            }
            Fixture {
                name,
                sidecar,
                headers,
                body,
            }
        })
        .collect()
}

fn filter() -> CaptureFilter {
    CaptureFilter::every_kind(OwnKinds::new(sync_core::ingest::limits::DEFAULT_KIND))
}

#[test]
fn every_fixture_decodes_and_decides_as_expected() {
    let fixtures = load_all();
    assert!(fixtures.len() >= 20, "{} fixtures", fixtures.len());
    for f in &fixtures {
        check(f);
    }
}

#[test]
fn the_fixtures_cover_every_event_type_and_value_type() {
    let fixtures = load_all();
    let types: BTreeSet<&str> = fixtures
        .iter()
        .filter_map(|f| f.sidecar.headers.get(header::TYPE).map(String::as_str))
        .filter_map(|t| EventType::parse(t).map(EventType::as_str))
        .collect();
    assert_eq!(types.len(), EventType::ALL.len(), "{types:?}");
    let mut written = BTreeSet::new();
    let mut value_types = BTreeSet::new();
    for f in &fixtures {
        let Ok(event) = decode(&f.headers, &f.body) else {
            continue;
        };
        if event.event_type.change == Change::Written {
            if let Ok(Decision::Forward(c)) = decide(&event, &filter()) {
                written.insert(c.message.operation.as_str());
            }
        }
        for result in [&event.data.value, &event.data.old_value]
            .into_iter()
            .flatten()
        {
            if let Some(entity) = &result.entity {
                collect_types(entity, &mut value_types);
            }
        }
    }
    assert_eq!(written.len(), 3, "written as create, update and delete");
    assert_eq!(
        value_types,
        [
            "array",
            "blob",
            "boolean",
            "double",
            "entity",
            "geo_point",
            "integer",
            "key",
            "null",
            "string",
            "timestamp",
            "unset"
        ]
        .into_iter()
        .collect()
    );
}

fn collect_types(entity: &Entity, into: &mut BTreeSet<&'static str>) {
    for v in entity.properties.values() {
        into.insert(type_name(v));
        match &v.value_type {
            Some(ValueType::EntityValue(e)) => collect_types(e, into),
            Some(ValueType::ArrayValue(a)) => {
                let mut wrapper = Entity::default();
                for (i, x) in a.values.iter().enumerate() {
                    wrapper.properties.insert(i.to_string(), x.clone());
                }
                collect_types(&wrapper, into);
            }
            _ => {}
        }
    }
}

fn check(f: &Fixture) {
    let name = &format!("{} ({})", f.name, f.sidecar.about);
    let expect = &f.sidecar.expect;
    let decision = expect["decision"].as_str().expect("decision");
    let event = match decode(&f.headers, &f.body) {
        Ok(event) => event,
        Err(e) => {
            assert_eq!(decision, "error", "{name}: refused: {e}");
            assert_eq!(expect["error_code"], e.code(), "{name}: {e}");
            return;
        }
    };
    // Every field of the body, as protobuf itself read it back.
    let proto = f
        .sidecar
        .proto
        .as_ref()
        .expect("a decodable body is described");
    same(&format!("{name}: proto"), &describe(&event.data), proto);
    // Every attribute, as sent.
    let h = |n: &str| f.sidecar.headers.get(n).cloned();
    assert_eq!(Some(event.id.clone()), h(header::ID), "{name}");
    assert_eq!(Some(event.source.clone()), h(header::SOURCE), "{name}");
    assert_eq!(
        Some(event.event_type.as_str().to_string()),
        h(header::TYPE),
        "{name}"
    );
    assert_eq!(
        event
            .time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        h(header::TIME),
        "{name}"
    );
    assert_eq!(event.subject, h(header::SUBJECT), "{name}");
    assert_eq!(event.database, h(header::DATABASE), "{name}");
    assert_eq!(event.namespace, h(header::NAMESPACE), "{name}");
    assert_eq!(event.entity, h(header::ENTITY), "{name}");
    assert_eq!(event.project, h(header::PROJECT), "{name}");
    assert_eq!(event.location, h(header::LOCATION), "{name}");
    assert_eq!(event.auth_type, h(header::AUTH_TYPE), "{name}");
    assert_eq!(event.auth_id, h(header::AUTH_ID), "{name}");
    assert_eq!(
        event.event_type.with_auth_context,
        event.auth_id.is_some(),
        "{name}: auth context"
    );

    // The request built back from the event reads the same (the bodies are
    // compared encoded: a NaN double is not equal to itself).
    let (headers, body) = event.to_request().expect("valid headers");
    let rebuilt = decode(&headers, &body).expect("rebuilt request decodes");
    assert_eq!(
        rebuilt.data.encode_to_vec(),
        event.data.encode_to_vec(),
        "{name}"
    );
    let without_data = |e: &crate::EntityEvent| crate::EntityEvent {
        data: EntityEventData::default(),
        ..e.clone()
    };
    assert_eq!(
        without_data(&rebuilt),
        without_data(&event),
        "{name}: rebuilt"
    );

    match (decide(&event, &filter()), decision) {
        (Ok(Decision::Forward(change)), "forward") => {
            same(
                &format!("{name}: event"),
                &change.message.to_json(),
                &expect["event"],
            );
            assert_eq!(change.event_id(), expect["event_id"], "{name}");
            assert_eq!(json!(change.removed()), expect["removed"], "{name}");
        }
        (Ok(Decision::Echo { kind }), "echo") | (Ok(Decision::Ignored { kind }), "ignored") => {
            assert_eq!(kind, expect["kind"], "{name}");
        }
        (Err(e), "error") => assert_eq!(e.code(), expect["error_code"], "{name}: {e}"),
        (got, want) => panic!("{name}: expected {want}, got {got:?}"),
    }
}

/// Asserts `got == want`, naming the first path where they differ (the
/// whole descriptions are too long to read in a failure).
fn same(path: &str, got: &Json, want: &Json) {
    match (got, want) {
        (Json::Object(g), Json::Object(w)) => {
            let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            for k in keys {
                same(
                    &format!("{path}.{k}"),
                    g.get(k).unwrap_or(&Json::Null),
                    w.get(k).unwrap_or(&Json::Null),
                );
            }
            assert_eq!(g.len(), w.len(), "{path}: members");
        }
        (Json::Array(g), Json::Array(w)) if g.len() == w.len() => {
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                same(&format!("{path}[{i}]"), g, w);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

// The description the script writes, built from the Rust side.

fn describe(data: &EntityEventData) -> Json {
    json!({
        "value": data.value.as_ref().map(describe_result),
        "old_value": data.old_value.as_ref().map(describe_result),
        "update_mask": data.update_mask.as_ref().map(|m| json!({"property_paths": m.property_paths})),
    })
}

fn describe_result(r: &EntityResult) -> Json {
    json!({
        "entity": r.entity.as_ref().map(describe_entity),
        "version": r.version,
        "create_time": r.create_time.as_ref().map(describe_ts),
        "update_time": r.update_time.as_ref().map(describe_ts),
        "cursor": base64::engine::general_purpose::STANDARD.encode(&r.cursor),
    })
}

fn describe_ts(t: &Timestamp) -> Json {
    json!({"seconds": t.seconds, "nanos": t.nanos})
}

fn describe_entity(e: &Entity) -> Json {
    let properties: Map<String, Json> = e
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), describe_value(v)))
        .collect();
    json!({"key": e.key.as_ref().map(describe_key), "properties": properties})
}

fn describe_key(k: &Key) -> Json {
    let path: Vec<Json> = k
        .path
        .iter()
        .map(|e| match &e.id_type {
            Some(IdType::Id(i)) => json!({"kind": e.kind, "id": i}),
            Some(IdType::Name(n)) => json!({"kind": e.kind, "name": n}),
            None => json!({"kind": e.kind}),
        })
        .collect();
    let partition = k.partition_id.as_ref().map(|p| {
        json!({"project_id": p.project_id, "database_id": p.database_id, "namespace_id": p.namespace_id})
    });
    json!({"partition_id": partition, "path": path})
}

fn type_name(v: &Value) -> &'static str {
    match &v.value_type {
        None => "unset",
        Some(ValueType::NullValue(_)) => "null",
        Some(ValueType::BooleanValue(_)) => "boolean",
        Some(ValueType::IntegerValue(_)) => "integer",
        Some(ValueType::DoubleValue(_)) => "double",
        Some(ValueType::TimestampValue(_)) => "timestamp",
        Some(ValueType::KeyValue(_)) => "key",
        Some(ValueType::StringValue(_)) => "string",
        Some(ValueType::BlobValue(_)) => "blob",
        Some(ValueType::GeoPointValue(_)) => "geo_point",
        Some(ValueType::EntityValue(_)) => "entity",
        Some(ValueType::ArrayValue(_)) => "array",
    }
}

fn describe_double(f: f64) -> Json {
    if f.is_nan() {
        json!("NaN")
    } else if f.is_infinite() {
        json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(f)
    }
}

fn describe_value(v: &Value) -> Json {
    let value = match &v.value_type {
        None | Some(ValueType::NullValue(_)) => Json::Null,
        Some(ValueType::BooleanValue(b)) => json!(b),
        Some(ValueType::IntegerValue(i)) => json!(i),
        Some(ValueType::DoubleValue(f)) => describe_double(*f),
        Some(ValueType::TimestampValue(t)) => describe_ts(t),
        Some(ValueType::KeyValue(k)) => describe_key(k),
        Some(ValueType::StringValue(s)) => json!(s),
        Some(ValueType::BlobValue(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(ValueType::GeoPointValue(p)) => {
            json!({"latitude": p.latitude, "longitude": p.longitude})
        }
        Some(ValueType::EntityValue(e)) => describe_entity(e),
        Some(ValueType::ArrayValue(a)) => {
            Json::Array(a.values.iter().map(describe_value).collect())
        }
    };
    json!({
        "type": type_name(v),
        "value": value,
        "meaning": v.meaning,
        "exclude_from_indexes": v.exclude_from_indexes,
    })
}
