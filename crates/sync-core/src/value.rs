//! User fields: the names they may not take, what values Datastore can hold,
//! a total order on those values, and size estimates.
//!
//! Field values are JSON values (`serde_json::Value`). Each JSON type maps to
//! one Datastore type: string, integer (i64), double, boolean, null, array,
//! object (embedded entity). Integers above `i64::MAX` are refused rather than
//! silently turned into doubles; note that JSON readers (this one included)
//! already read integer literals beyond the u64 range as doubles, as JavaScript
//! does, so those arrive here as doubles and are stored as such.

use crate::error::ValidationError;
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// The recipe's `version` property beside the user fields.
pub const VERSION_PROPERTY: &str = "version";
/// The recipe's `last_modified` property.
pub const LAST_MODIFIED_PROPERTY: &str = "last_modified";
/// The recipe's `sync_status` property.
pub const SYNC_STATUS_PROPERTY: &str = "sync_status";
/// The recipe's `conflict_resolved` property.
pub const CONFLICT_RESOLVED_PROPERTY: &str = "conflict_resolved";
/// Name of the unindexed property holding the merge bookkeeping (see
/// [`crate::merge::stored`]).
pub const BOOKKEEPING_PROPERTY: &str = "_sync";

/// Property names user data may not set: the recipe's bookkeeping beside the
/// fields, and ours.
pub const RESERVED_FIELDS: [&str; 5] = [
    VERSION_PROPERTY,
    LAST_MODIFIED_PROPERTY,
    SYNC_STATUS_PROPERTY,
    CONFLICT_RESOLVED_PROPERTY,
    BOOKKEEPING_PROPERTY,
];

/// Datastore's limit on key names, kinds and property names, in bytes.
pub const MAX_NAME_BYTES: usize = 1500;

/// Checks a Datastore name (key name, kind, property name): non-empty, at most
/// 1500 bytes, not of the reserved form `__*__`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "is {} bytes, over the {MAX_NAME_BYTES}-byte limit",
            name.len()
        ));
    }
    if name.len() >= 4 && name.starts_with("__") && name.ends_with("__") {
        return Err("names of the form __*__ are reserved by Datastore".into());
    }
    Ok(())
}

/// Checks that every value in an object of user fields is representable in
/// Datastore, and every nested property name is valid.
pub fn check_fields(fields: &Map<String, Value>, path: &str) -> Result<(), ValidationError> {
    for (name, value) in fields {
        let here = join(path, name);
        check_name(name).map_err(|reason| ValidationError::InvalidFieldName {
            path: here.clone(),
            reason,
        })?;
        check_value(value, &here, false)?;
    }
    Ok(())
}

fn check_value(value: &Value, path: &str, inside_array: bool) -> Result<(), ValidationError> {
    match value {
        Value::Number(n) => {
            if n.is_u64() && n.as_i64().is_none() {
                return Err(ValidationError::UnsupportedValue {
                    path: path.to_string(),
                    reason: format!(
                        "integer {n} is above the 64-bit signed range Datastore stores"
                    ),
                });
            }
            Ok(())
        }
        Value::Array(items) => {
            if inside_array {
                return Err(ValidationError::UnsupportedValue {
                    path: path.to_string(),
                    reason: "an array directly inside an array cannot be stored in Datastore"
                        .into(),
                });
            }
            for (i, item) in items.iter().enumerate() {
                check_value(item, &format!("{path}[{i}]"), true)?;
            }
            Ok(())
        }
        Value::Object(map) => check_fields(map, path),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values, used by the `max`, `min` and `union` rules and
/// as the last tie-break of the merge.
///
/// null < booleans < numbers < strings < arrays < objects; numbers compare by
/// value (an integer and a double that are equal compare by their text, so the
/// order stays total); strings by bytes; arrays and objects by their canonical
/// JSON text.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
            canonical(a).cmp(&canonical(b))
        }
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    let by_value = match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let a = x.as_f64().unwrap_or(f64::NAN);
            let b = y.as_f64().unwrap_or(f64::NAN);
            a.total_cmp(&b)
        }
    };
    by_value.then_with(|| x.to_string().cmp(&y.to_string()))
}

/// Canonical JSON text of a value: object keys sorted (serde_json's default map
/// is ordered), no whitespace. Equal values give equal text.
pub fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Estimated Datastore storage size of a value, in bytes, following Datastore's
/// storage-size rules (strings: UTF-8 length + 1; integers, doubles and
/// timestamps: 8; booleans and null: 1; arrays and embedded entities: the sum of
/// their parts).
pub fn storage_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 1,
        Value::Array(items) => items.iter().map(storage_size).sum(),
        Value::Object(map) => fields_size(map),
    }
}

/// [`storage_size`] of a map of properties: each name (plus one) and value.
pub fn fields_size(map: &Map<String, Value>) -> usize {
    map.iter().map(|(k, v)| k.len() + 1 + storage_size(v)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use serde_json::json;

    #[test]
    fn names_follow_datastore_rules() {
        assert!(check_name("name").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("__key__").is_err());
        assert!(check_name("__").is_ok());
        assert!(check_name("_x_").is_ok());
        assert!(check_name(&"a".repeat(1500)).is_ok());
        assert!(check_name(&"a".repeat(1501)).is_err());
    }

    #[test]
    fn nested_array_is_refused_but_array_in_object_in_array_is_not() {
        let bad = json!({"m": [1, [2]]});
        let err = check_fields(bad.as_object().expect("object"), "").expect_err("nested array");
        assert_eq!(err.code(), "unsupported_value");
        let ok = json!({"m": [1, {"inner": [2, 3]}]});
        assert!(check_fields(ok.as_object().expect("object"), "").is_ok());
    }

    #[test]
    fn integers_above_i64_are_refused() {
        let bad = json!({"n": u64::MAX});
        let err = check_fields(bad.as_object().expect("object"), "").expect_err("u64");
        assert_eq!(err.code(), "unsupported_value");
        let ok = json!({"n": i64::MIN, "m": i64::MAX, "f": 1.5});
        assert!(check_fields(ok.as_object().expect("object"), "").is_ok());
    }

    #[test]
    fn nested_field_names_are_checked() {
        let bad = json!({"outer": {"__x__": 1}});
        let err = check_fields(bad.as_object().expect("object"), "").expect_err("reserved");
        assert_eq!(err.code(), "invalid_field_name");
        assert!(err.to_string().contains("outer.__x__"));
    }

    #[test]
    fn value_order_is_total_and_numeric() {
        assert_eq!(compare_values(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(2.5), &json!(2)), Ordering::Greater);
        assert_eq!(compare_values(&json!(null), &json!(false)), Ordering::Less);
        assert_eq!(compare_values(&json!("b"), &json!("a")), Ordering::Greater);
        assert_ne!(compare_values(&json!(1), &json!(1.0)), Ordering::Equal);
    }
}
