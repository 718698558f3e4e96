//! The JSON form of the wire types.

use serde::Serialize;
use serde_json::Value;

/// `message` as JSON. The wire types hold only strings, numbers and JSON
/// values under string keys, which always serialise.
pub(crate) fn to_json(message: &impl Serialize) -> Value {
    serde_json::to_value(message).expect("wire types always serialise")
}
