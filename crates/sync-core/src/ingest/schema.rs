//! Schema history: how an event of an older `schema_version` becomes an event
//! of the current one, declared in a JSON or TOML file, never in code.
//!
//! A history names the `current` version and one step for each older version
//! it accepts; an event is upcast through every step to the current version
//! before it is validated, so the merge only sees current events. A version the
//! history does not know is refused (`unsupported_schema_version`); without a
//! history, only version 1 is accepted. The configuration layer reads the file
//! `SCHEMA_HISTORY_FILE` names; [`SchemaHistory::from_file_contents`] parses it.
//!
//! A step works on the event's `data` (dotted paths): `drop`, then `rename` and
//! `move`, then `default` (creates only). Where both the old and the new name
//! carry data, the new one wins, so the upcast depends only on the event. A
//! step whose outcome would depend on the order of its operations, or a gap in
//! the versions, is refused when the history is loaded, every problem listed.
//!
//! ```
//! use serde_json::json;
//! use sync_core::ingest::schema::SchemaHistory;
//! use sync_core::Operation;
//!
//! let history = SchemaHistory::from_toml(r#"
//!     current = 2
//!     [[upcast]]
//!     from = 1
//!     rename = { name = "title" }
//!     move = { street = "address.street" }
//!     default = { currency = "EUR" }
//!     drop = ["fax"]
//! "#)?;
//! let mut data = json!({"name": "Lamp", "street": "Main St 1", "fax": "none"});
//! let data = data.as_object_mut().expect("an object");
//! let upcast = history.upcast(1, Operation::Create, data)?;
//! assert_eq!((upcast.received_version, upcast.version, upcast.changed), (1, 2, true));
//! assert_eq!(
//!     serde_json::Value::Object(data.clone()),
//!     json!({"title": "Lamp", "address": {"street": "Main St 1"}, "currency": "EUR"})
//! );
//! assert!(history.upcast(3, Operation::Create, data).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::ValidationError;
use crate::file_format::Format;
use crate::value::{check_fields, check_name, RESERVED_FIELDS};
use crate::wire::event::field;
use crate::wire::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// The version of an event that names none.
pub const DEFAULT_SCHEMA_VERSION: i64 = 1;

/// What upcasting did to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upcast {
    /// The `schema_version` the event carried ([`DEFAULT_SCHEMA_VERSION`] when absent).
    pub received_version: i64,
    /// The version after upcasting: the history's current one.
    pub version: i64,
    /// Whether upcasting changed the event's data.
    pub changed: bool,
}

/// A validated schema history (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaHistory {
    current: i64,
    /// Ascending and contiguous: `steps[i]` upcasts version `current - len + i`.
    steps: Vec<Step>,
}

impl Default for SchemaHistory {
    /// Version 1 only.
    fn default() -> Self {
        Self {
            current: DEFAULT_SCHEMA_VERSION,
            steps: Vec::new(),
        }
    }
}

/// A dotted path into an event's data, as its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path(Vec<String>);

impl Path {
    /// One path is the other or lies inside it.
    fn overlaps(&self, other: &Path) -> bool {
        let n = self.0.len().min(other.0.len());
        self.0[..n] == other.0[..n]
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// One version to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    drop: Vec<Path>,
    /// Renames and moves, (source, target).
    moves: Vec<(Path, Path)>,
    defaults: Vec<(Path, Value)>,
}

/// The file's form: every operation a step may name, and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFile {
    current: i64,
    #[serde(default)]
    upcast: Vec<StepFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    from: i64,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    rename: BTreeMap<String, Value>,
    #[serde(default, rename = "move")]
    moves: BTreeMap<String, Value>,
    #[serde(default)]
    default: BTreeMap<String, Value>,
    #[serde(default)]
    drop: Vec<String>,
}

/// Why a schema history was refused.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// The text is not valid JSON / TOML for a history (unknown operations land here).
    #[error("schema history is not valid {format}: {message}")]
    Parse {
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's explanation (names the unknown operation and the valid ones).
        message: String,
    },
    /// The history parses but cannot be used: every reason, one per entry.
    #[error("schema history is inconsistent: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The file name says neither JSON nor TOML.
    #[error("schema history file `{0}` must end in .json or .toml")]
    UnknownFormat(String),
}

impl SchemaError {
    /// Each problem on its own, for a configuration report that lists them all.
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Invalid(reasons) => reasons
                .iter()
                .map(|r| format!("schema history is inconsistent: {r}"))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

impl SchemaHistory {
    /// Parses a JSON history.
    ///
    /// # Errors
    /// [`SchemaError`] for bad syntax, unknown operations or inconsistencies.
    pub fn from_json(text: &str) -> Result<Self, SchemaError> {
        Self::parse(Format::Json, text)
    }

    /// Parses a TOML history.
    ///
    /// # Errors
    /// [`SchemaError`] for bad syntax, unknown operations or inconsistencies.
    pub fn from_toml(text: &str) -> Result<Self, SchemaError> {
        Self::parse(Format::Toml, text)
    }

    /// Parses a history file's contents, choosing the format by the file name.
    ///
    /// # Errors
    /// [`SchemaError::UnknownFormat`] for other extensions, else as the parsers.
    pub fn from_file_contents(file_name: &str, text: &str) -> Result<Self, SchemaError> {
        let format =
            Format::of(file_name).ok_or_else(|| SchemaError::UnknownFormat(file_name.into()))?;
        Self::parse(format, text)
    }

    fn parse(format: Format, text: &str) -> Result<Self, SchemaError> {
        let file: HistoryFile = format.parse(text).map_err(|message| SchemaError::Parse {
            format: format.name(),
            message,
        })?;
        Self::validated(file)
    }

    /// The version events are upcast to.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// The oldest version accepted.
    pub fn oldest(&self) -> i64 {
        self.current - self.steps.len() as i64
    }

    /// Upcasts `data`, of an event of `version` doing `operation`, in place to
    /// the current version. A delete's data is left alone (it is ignored).
    ///
    /// # Errors
    /// [`ValidationError::UnsupportedSchemaVersion`] for a version the history
    /// does not know; `data` is then untouched.
    pub fn upcast(
        &self,
        version: i64,
        operation: Operation,
        data: &mut Map<String, Value>,
    ) -> Result<Upcast, ValidationError> {
        if !(self.oldest()..=self.current).contains(&version) {
            return Err(ValidationError::UnsupportedSchemaVersion {
                version,
                oldest: self.oldest(),
                current: self.current,
            });
        }
        let mut changed = false;
        if operation != Operation::Delete {
            let first = usize::try_from(version - self.oldest()).unwrap_or(usize::MAX);
            for step in self.steps.iter().skip(first) {
                changed |= step.apply(operation, data);
            }
        }
        Ok(Upcast {
            received_version: version,
            version: self.current,
            changed,
        })
    }

    /// Upcasts a whole event object in place: reads its `schema_version` and
    /// `operation`, upcasts its `data` when that is an object (anything else
    /// is left for validation to refuse), and sets `schema_version` to the
    /// current version when it differs. An operation that is no operation
    /// counts as an update (no defaults).
    ///
    /// # Errors
    /// [`ValidationError::WrongType`] when `schema_version` is not an integer;
    /// [`ValidationError::UnsupportedSchemaVersion`] as [`upcast`](Self::upcast).
    pub fn upcast_event(&self, event: &mut Map<String, Value>) -> Result<Upcast, ValidationError> {
        let version = schema_version_of(event)?;
        let operation = event
            .get(field::OPERATION)
            .and_then(Value::as_str)
            .and_then(|op| Operation::parse(op).ok())
            .unwrap_or(Operation::Update);
        let mut empty = Map::new();
        let data = match event.get_mut(field::DATA) {
            Some(Value::Object(data)) => data,
            _ => &mut empty,
        };
        let upcast = self.upcast(version, operation, data)?;
        if upcast.version != version {
            event.insert(field::SCHEMA_VERSION.into(), upcast.version.into());
        }
        Ok(upcast)
    }

    /// Upcasts the top-level field names an event of `version` lists in
    /// `removed`, as its data's fields would be upcast: a field a step
    /// renames or moves to a top-level name is removed under that name; a
    /// field part of which a step moves to a top-level name is removed with
    /// that name too (the part goes with it); a dropped field's removal stays
    /// (it removes what older events stored under the old name). The result
    /// is sorted and without duplicates.
    ///
    /// ```
    /// use sync_core::SchemaHistory;
    /// let h = SchemaHistory::from_toml(
    ///     "current = 2\n[[upcast]]\nfrom = 1\nrename = { name = \"title\" }\nmove = { \"size.weight\" = \"weight\" }\n",
    /// )?;
    /// let mut removed = vec!["name".to_string(), "size".to_string()];
    /// h.upcast_removed(1, &mut removed)?;
    /// assert_eq!(removed, ["size", "title", "weight"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ValidationError::UnsupportedRemoval`] when a step moves a removed
    /// field, or part of it, inside an object: a removal names a top-level
    /// field, and the merge works on top-level fields;
    /// [`ValidationError::UnsupportedSchemaVersion`] as [`upcast`](Self::upcast).
    pub fn upcast_removed(
        &self,
        version: i64,
        removed: &mut Vec<String>,
    ) -> Result<(), ValidationError> {
        if !(self.oldest()..=self.current).contains(&version) {
            return Err(ValidationError::UnsupportedSchemaVersion {
                version,
                oldest: self.oldest(),
                current: self.current,
            });
        }
        let first = usize::try_from(version - self.oldest()).unwrap_or(usize::MAX);
        for step in self.steps.iter().skip(first) {
            *removed = step.map_removed(removed)?;
        }
        removed.sort_unstable();
        removed.dedup();
        Ok(())
    }

    fn validated(file: HistoryFile) -> Result<Self, SchemaError> {
        let mut problems = Vec::new();
        let current = file.current;
        if current < DEFAULT_SCHEMA_VERSION {
            problems.push(format!("current = {current}: versions start at 1"));
        }
        let mut by_from: BTreeMap<i64, Step> = BTreeMap::new();
        for s in file.upcast {
            let from = s.from;
            let here = format!("the step from version {from}");
            if from < DEFAULT_SCHEMA_VERSION {
                problems.push(format!("{here}: versions start at 1"));
            }
            match s.to {
                Some(to) if to <= from => problems.push(format!(
                    "{here} goes back to {to}: steps go from a version to the next, so a history has no cycle"
                )),
                Some(to) if to != from + 1 => problems.push(format!(
                    "{here} skips to {to}: a step goes to the next version ({})",
                    from + 1
                )),
                _ => {}
            }
            if from >= current {
                problems.push(format!(
                    "current = {current} does not match {here}, which goes to {}: steps end at the current version",
                    from + 1
                ));
            }
            let step = Step::parse(&s, &here, &mut problems);
            if by_from.insert(from, step).is_some() {
                problems.push(format!(
                    "two steps from version {from}: each version has one way to the next"
                ));
            }
        }
        if let Some(&oldest) = by_from.keys().next() {
            for v in oldest..current {
                if !by_from.contains_key(&v) {
                    problems.push(format!(
                        "no step from version {v} to {}: every version from the oldest step ({oldest}) up to current = {current} needs one (a gap)",
                        v + 1
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(SchemaError::Invalid(problems));
        }
        Ok(Self {
            current,
            steps: by_from.into_values().collect(),
        })
    }
}

/// An event object's `schema_version`, [`DEFAULT_SCHEMA_VERSION`] when
/// absent or `null`.
///
/// # Errors
/// [`ValidationError::WrongType`] when it is not an integer.
pub fn schema_version_of(event: &Map<String, Value>) -> Result<i64, ValidationError> {
    let wrong = ValidationError::WrongType {
        field: field::SCHEMA_VERSION,
        expected: "an integer",
    };
    match event.get(field::SCHEMA_VERSION) {
        None | Some(Value::Null) => Ok(DEFAULT_SCHEMA_VERSION),
        Some(Value::Number(n)) => n.as_i64().ok_or(wrong),
        Some(_) => Err(wrong),
    }
}

impl Step {
    /// The step a file declares; every problem is noted, prefixed by `here`.
    fn parse(file: &StepFile, here: &str, problems: &mut Vec<String>) -> Self {
        let mut found = Vec::new();
        let mut moves = Vec::new();
        for (op, map) in [("rename", &file.rename), ("move", &file.moves)] {
            for (source, target) in flatten_targets(map) {
                let s = path_or_note(&format!("{op} `{source}`"), &source, false, &mut found);
                let Some(target) = target else {
                    found.push(format!("{op} `{source}` must name the new path as text"));
                    continue;
                };
                let label = format!("{op} `{source}` to `{target}`");
                let t = path_or_note(&label, &target, true, &mut found);
                let (Some(s), Some(t)) = (s, t) else {
                    continue;
                };
                if op == "rename" && (s.0.len() > 1 || t.0.len() > 1) {
                    found.push(format!(
                        "rename `{s}` to `{t}`: rename is for top-level fields; use move for dotted paths"
                    ));
                } else if s == t {
                    found.push(format!("{op} `{s}` onto itself"));
                } else {
                    moves.push((s, t));
                }
            }
        }
        let drop: Vec<Path> = file
            .drop
            .iter()
            .filter_map(|p| path_or_note(&format!("drop `{p}`"), p, false, &mut found))
            .collect();
        let mut defaults = Vec::new();
        for (p, value) in &file.default {
            let Some(at) = path_or_note(&format!("default `{p}`"), p, true, &mut found) else {
                continue;
            };
            let leaf = Map::from_iter([(at.0[at.0.len() - 1].clone(), value.clone())]);
            match check_fields(&leaf, "") {
                Ok(()) => defaults.push((at, value.clone())),
                Err(e) => found.push(format!("default `{at}`: {e}")),
            }
        }
        let step = Self {
            drop,
            moves,
            defaults,
        };
        step.check_overlaps(&mut found);
        problems.extend(found.into_iter().map(|p| format!("{here}: {p}")));
        step
    }

    /// Notes every pair of paths the step names whose outcome would depend on
    /// the order of its operations.
    fn check_overlaps(&self, found: &mut Vec<String>) {
        let sources: Vec<(&Path, String)> = self
            .moves
            .iter()
            .map(|(s, t)| (s, format!("`{s}` is moved to `{t}`")))
            .chain(self.drop.iter().map(|d| (d, format!("`{d}` is dropped"))))
            .collect();
        overlapping_pairs(
            &sources,
            found,
            "one step takes each field away once (split it into two steps)",
        );
        let targets: Vec<(&Path, String)> = self
            .moves
            .iter()
            .map(|(s, t)| (t, format!("`{s}` is moved onto `{t}`")))
            .collect();
        overlapping_pairs(
            &targets,
            found,
            "two fields moved onto one place in the same step",
        );
        for (t, t_says) in &targets {
            for (s, s_says) in &sources {
                if t.overlaps(s) {
                    found.push(format!(
                        "{t_says}, where this step also takes a field away ({s_says}): a rename onto an existing field in the same step (split it into two steps)"
                    ));
                }
            }
        }
        let defaults: Vec<(&Path, String)> = self
            .defaults
            .iter()
            .map(|(p, _)| (p, format!("`{p}` has a default")))
            .collect();
        overlapping_pairs(&defaults, found, "one default inside another");
        for (d, d_says) in &defaults {
            let clash = sources
                .iter()
                .chain(targets.iter().filter(|(t, _)| t != d))
                .find(|(p, _)| d.overlaps(p));
            if let Some((_, says)) = clash {
                found.push(format!(
                    "{d_says} and {says}: a default fills an absent field, or exactly a move's target"
                ));
            }
        }
    }

    /// The top-level names `removed` become in the next version (see
    /// [`SchemaHistory::upcast_removed`]).
    fn map_removed(&self, removed: &[String]) -> Result<Vec<String>, ValidationError> {
        let mut out = Vec::with_capacity(removed.len());
        for name in removed {
            let mut stays = true;
            for (source, target) in &self.moves {
                let Some((top, inner)) = source.0.split_first() else {
                    continue;
                };
                if top != name {
                    continue;
                }
                // The whole field moves away, or only a part of it.
                stays &= !inner.is_empty();
                match target.0.as_slice() {
                    [to] => out.push(to.clone()),
                    _ => {
                        return Err(ValidationError::UnsupportedRemoval {
                            field: name.clone(),
                            target: target.to_string(),
                        })
                    }
                }
            }
            if stays {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// Applies the step to `data`; whether anything changed.
    fn apply(&self, operation: Operation, data: &mut Map<String, Value>) -> bool {
        let mut changed = false;
        for p in &self.drop {
            changed |= take(data, &p.0).is_some();
        }
        let taken: Vec<(&Path, Value)> = self
            .moves
            .iter()
            .filter_map(|(s, t)| take(data, &s.0).map(|v| (t, v)))
            .collect();
        for (target, value) in taken {
            changed = true;
            // The data already at the new place wins; the old value is dropped.
            put(data, &target.0, value);
        }
        if operation == Operation::Create {
            for (p, value) in &self.defaults {
                changed |= put(data, &p.0, value.clone());
            }
        }
        changed
    }
}

/// `text` as a dotted path of valid field names; a target's top-level name
/// may not be reserved.
fn parse_path(text: &str, target: bool) -> Result<Path, String> {
    let segments: Vec<String> = text.split('.').map(str::to_string).collect();
    for s in &segments {
        check_name(s).map_err(|e| format!("the name `{s}` {e}"))?;
    }
    if target && RESERVED_FIELDS.contains(&segments[0].as_str()) {
        return Err(format!(
            "`{}` is reserved for the sync function's bookkeeping",
            segments[0]
        ));
    }
    Ok(Path(segments))
}

/// [`parse_path`], noting its error in `found` after `label`.
fn path_or_note(label: &str, text: &str, target: bool, found: &mut Vec<String>) -> Option<Path> {
    parse_path(text, target)
        .map_err(|e| found.push(format!("{label}: {e}")))
        .ok()
}

/// Notes each pair of `list` (path, what the step does with it) whose paths
/// overlap, saying `why` that is refused.
fn overlapping_pairs(list: &[(&Path, String)], found: &mut Vec<String>, why: &str) {
    for (i, (a, a_says)) in list.iter().enumerate() {
        for (b, b_says) in &list[i + 1..] {
            if a.overlaps(b) {
                found.push(format!("{a_says} and {b_says}: {why}"));
            }
        }
    }
}

/// Source path → target text of a rename or move table. TOML's dotted keys
/// (`size.weight = "weight"`) arrive as nested tables and are read as the
/// dotted path they spell; a target that is not text is `None`.
fn flatten_targets(map: &BTreeMap<String, Value>) -> Vec<(String, Option<String>)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Option<String>)>) {
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                for (k, v) in inner {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            Value::String(s) => out.push((prefix.to_string(), Some(s.clone()))),
            _ => out.push((prefix.to_string(), None)),
        }
    }
    let mut out = Vec::new();
    for (k, v) in map {
        walk(k, v, &mut out);
    }
    out
}

/// Removes the value at `path`, and every object the removal leaves empty.
fn take(map: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    if rest.is_empty() {
        return map.remove(first);
    }
    let Some(Value::Object(child)) = map.get_mut(first) else {
        return None;
    };
    let value = take(child, rest)?;
    if child.is_empty() {
        map.remove(first);
    }
    Some(value)
}

/// Puts `value` at `path`, creating the objects on the way, unless the place
/// is taken: a value there already, or a prefix that is not an object.
/// Whether it was put.
fn put(map: &mut Map<String, Value>, path: &[String], value: Value) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        if map.contains_key(first) {
            return false;
        }
        map.insert(first.clone(), value);
        return true;
    }
    match map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(child) => put(child, rest, value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use serde_json::json;

    /// The documented example (docs/semantics.md), as the e2e test's fixture holds it.
    const EXAMPLE: &str = include_str!("../../../../scripts/testdata/schema_history.toml");

    fn history(toml: &str) -> SchemaHistory {
        SchemaHistory::from_toml(toml).expect("valid history")
    }

    fn one_step(ops: &str) -> SchemaHistory {
        history(&format!("current = 2\n[[upcast]]\nfrom = 1\n{ops}\n"))
    }

    /// `data` of a v1 event doing `op`, upcast; and whether it changed.
    fn run(h: &SchemaHistory, op: Operation, data: Value) -> (Value, bool) {
        let Value::Object(mut map) = data else {
            panic!("an object");
        };
        let upcast = h.upcast(1, op, &mut map).expect("known version");
        (Value::Object(map), upcast.changed)
    }

    fn create(h: &SchemaHistory, data: Value) -> Value {
        run(h, Operation::Create, data).0
    }

    fn problems(toml: &str) -> String {
        SchemaHistory::from_toml(toml)
            .expect_err("refused")
            .problems()
            .join("\n")
    }

    #[test]
    fn rename() {
        let h = one_step(r#"rename = { name = "title" }"#);
        assert_eq!(
            run(&h, Operation::Update, json!({"name": "a", "x": 1})),
            (json!({"title": "a", "x": 1}), true)
        );
        assert_eq!(
            run(&h, Operation::Update, json!({"x": 1})),
            (json!({"x": 1}), false)
        );
        // null is a value: it moves like any other.
        assert_eq!(create(&h, json!({"name": null})), json!({"title": null}));
    }

    #[test]
    fn default_fills_absent_fields_of_creates_only() {
        let h = one_step(r#"default = { currency = "EUR", "address.country" = "DE" }"#);
        assert_eq!(
            create(&h, json!({"price": 3})),
            json!({"price": 3, "currency": "EUR", "address": {"country": "DE"}})
        );
        assert_eq!(
            create(&h, json!({"currency": "USD", "address": {"city": "Ulm"}})),
            json!({"currency": "USD", "address": {"city": "Ulm", "country": "DE"}})
        );
        // A prefix that is not an object is data; the default does not replace it.
        assert_eq!(
            create(&h, json!({"address": "unknown"})),
            json!({"address": "unknown", "currency": "EUR"})
        );
        assert_eq!(
            run(&h, Operation::Update, json!({"price": 3})),
            (json!({"price": 3}), false)
        );
    }

    #[test]
    fn drop_removes_fields_and_emptied_objects() {
        let h = one_step(r#"drop = ["fax", "meta.legacy"]"#);
        assert_eq!(
            run(
                &h,
                Operation::Update,
                json!({"fax": 1, "meta": {"legacy": 2}, "x": 3})
            ),
            (json!({"x": 3}), true)
        );
        assert_eq!(
            create(&h, json!({"meta": {"legacy": 2, "kept": 1}})),
            json!({"meta": {"kept": 1}})
        );
        // An object that was empty before is the publisher's, and stays.
        assert_eq!(
            run(&h, Operation::Update, json!({"meta": {}})),
            (json!({"meta": {}}), false)
        );
    }

    #[test]
    fn move_into_a_nested_object() {
        let h = one_step(r#"move = { street = "address.street", city = "address.city" }"#);
        assert_eq!(
            create(&h, json!({"street": "Main St", "city": "Ulm"})),
            json!({"address": {"street": "Main St", "city": "Ulm"}})
        );
        assert_eq!(
            create(&h, json!({"street": "Main St", "address": {"zip": "1"}})),
            json!({"address": {"street": "Main St", "zip": "1"}})
        );
    }

    #[test]
    fn move_out_of_a_nested_object() {
        // TOML's dotted key spells the same path as the quoted one.
        for ops in [
            r#"move = { "size.weight" = "weight" }"#,
            r#"move = { size.weight = "weight" }"#,
        ] {
            let h = one_step(ops);
            assert_eq!(
                create(&h, json!({"size": {"weight": 3, "width": 2}})),
                json!({"size": {"width": 2}, "weight": 3})
            );
            assert_eq!(
                create(&h, json!({"size": {"weight": 3}})),
                json!({"weight": 3})
            );
        }
    }

    #[test]
    fn the_new_name_wins_when_both_carry_data() {
        let h = one_step(
            r#"rename = { name = "title" }
move = { street = "address.street" }"#,
        );
        assert_eq!(
            run(
                &h,
                Operation::Update,
                json!({"name": "old", "title": "new"})
            ),
            (json!({"title": "new"}), true)
        );
        assert_eq!(
            create(&h, json!({"street": "old", "address": {"street": "new"}})),
            json!({"address": {"street": "new"}})
        );
        // The place is taken by a value that is not an object: it wins too.
        assert_eq!(
            create(&h, json!({"street": "old", "address": "new"})),
            json!({"address": "new"})
        );
    }

    #[test]
    fn a_chain_of_two_steps_runs_in_order() {
        let h = history(
            r#"current = 3
[[upcast]]
from = 1
rename = { name = "title" }
default = { tags = [] }
[[upcast]]
from = 2
to = 3
move = { title = "label.text" }
drop = ["tags"]
default = { "label.lang" = "en" }
"#,
        );
        assert_eq!((h.oldest(), h.current()), (1, 3));
        assert_eq!(
            create(&h, json!({"name": "a"})),
            json!({"label": {"text": "a", "lang": "en"}})
        );
        let mut v2 = json!({"title": "b"});
        let map = v2.as_object_mut().expect("object");
        let up = h.upcast(2, Operation::Create, map).expect("v2");
        assert_eq!((up.received_version, up.version), (2, 3));
        assert_eq!(v2, json!({"label": {"text": "b", "lang": "en"}}));
        let mut v3 = json!({"label": {"text": "c"}});
        let map = v3.as_object_mut().expect("object");
        let up = h.upcast(3, Operation::Update, map).expect("v3");
        assert!(!up.changed);
        assert_eq!(v3, json!({"label": {"text": "c"}}));
    }

    #[test]
    fn unknown_versions_are_unsupported_and_leave_the_data_alone() {
        let h = one_step(r#"rename = { name = "title" }"#);
        for v in [0, 3, -1, i64::MAX, i64::MIN] {
            let mut data = Map::from_iter([("name".to_string(), json!("a"))]);
            let err = h
                .upcast(v, Operation::Create, &mut data)
                .expect_err("unknown");
            assert_eq!(err.code(), "unsupported_schema_version");
            assert!(err.to_string().contains("1 to 2"), "{err}");
            assert_eq!(data["name"], "a");
        }
        let d = SchemaHistory::default();
        let err = d
            .upcast(2, Operation::Update, &mut Map::new())
            .expect_err("v2");
        assert_eq!(
            err.to_string(),
            "schema_version 2 is not supported (supported: 1)"
        );
    }

    #[test]
    fn a_delete_keeps_its_data_and_takes_the_current_version() {
        let h = one_step(r#"rename = { name = "title" }"#);
        let mut event = json!({"entity_id": "e", "operation": "delete", "data": {"name": 1}});
        let obj = event.as_object_mut().expect("object");
        let up = h.upcast_event(obj).expect("v1");
        assert!(!up.changed);
        assert_eq!(obj["data"], json!({"name": 1}));
        assert_eq!(obj["schema_version"], 2);
    }

    #[test]
    fn upcast_event_reads_the_version_and_the_operation() {
        let h = one_step(r#"default = { currency = "EUR" }"#);
        let mut event = json!({"operation": "create", "schema_version": 1, "data": {}});
        let obj = event.as_object_mut().expect("object");
        assert!(h.upcast_event(obj).expect("v1").changed);
        assert_eq!(obj["data"], json!({"currency": "EUR"}));
        let mut current = json!({"operation": "create", "schema_version": 2, "data": {}});
        let obj = current.as_object_mut().expect("object");
        assert!(!h.upcast_event(obj).expect("v2").changed);
        let mut wrong = json!({"schema_version": "1"});
        let err = h
            .upcast_event(wrong.as_object_mut().expect("object"))
            .expect_err("text");
        assert_eq!(err.code(), "wrong_type");
    }

    #[test]
    fn removals_follow_their_fields() {
        let h = one_step(
            r#"rename = { name = "title" }
move = { street = "address.street", "dims.weight" = "weight", "dims.depth" = "box.depth" }
drop = ["fax"]"#,
        );
        let up = |names: &[&str]| {
            let mut removed: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
            h.upcast_removed(1, &mut removed).map(|()| removed)
        };
        assert_eq!(up(&["name", "other"]).expect("renamed"), ["other", "title"]);
        // A dropped field's removal stays: it removes what is stored under it.
        assert_eq!(up(&["fax"]).expect("dropped"), ["fax"]);
        // Renamed onto a name also listed: one removal.
        assert_eq!(up(&["name", "title"]).expect("collapsed"), ["title"]);
        // The current version's names pass unchanged.
        let mut current = vec!["street".to_string()];
        h.upcast_removed(2, &mut current).expect("v2");
        assert_eq!(current, ["street"]);
        // Into an object: a removal cannot say that.
        let err = up(&["street"]).expect_err("moved inside `address`");
        assert_eq!(err.code(), "unsupported_removal");
        assert!(err.to_string().contains("address.street"), "{err}");
        let err = up(&["dims"]).expect_err("part moves inside `box`");
        assert_eq!(err.code(), "unsupported_removal");
        let err = SchemaHistory::default()
            .upcast_removed(2, &mut Vec::new())
            .expect_err("unknown version");
        assert_eq!(err.code(), "unsupported_schema_version");
    }

    #[test]
    fn a_removed_field_whose_part_moves_out_removes_the_part_too() {
        let h = one_step(r#"move = { "dims.weight" = "weight" }"#);
        let mut removed = vec!["dims".to_string()];
        h.upcast_removed(1, &mut removed).expect("top-level target");
        assert_eq!(removed, ["dims", "weight"]);
    }

    #[test]
    fn json_and_toml_agree() {
        let j = SchemaHistory::from_json(
            r#"{"current":2,"upcast":[{"from":1,"rename":{"a":"b"},"move":{"c":"d.e"},"default":{"f":1},"drop":["g"]}]}"#,
        )
        .expect("json");
        let t = one_step(
            "rename = { a = \"b\" }\nmove = { c = \"d.e\" }\ndefault = { f = 1 }\ndrop = [\"g\"]",
        );
        assert_eq!(j, t);
        assert_eq!(
            SchemaHistory::from_file_contents("h.toml", "current = 1").expect("v1"),
            SchemaHistory::default()
        );
        assert!(matches!(
            SchemaHistory::from_file_contents("h.yaml", ""),
            Err(SchemaError::UnknownFormat(_))
        ));
    }

    #[test]
    fn the_readme_example_loads_and_upcasts_as_documented() {
        let h = SchemaHistory::from_toml(EXAMPLE).expect("the documented example");
        assert_eq!((h.oldest(), h.current()), (1, 2));
        assert_eq!(
            create(
                &h,
                json!({"name": "Desk lamp", "price": 30, "street": "Main St 1", "city": "Ulm",
                       "fax": "0731", "dimensions": {"weight": 900, "width": 20}})
            ),
            json!({"title": "Desk lamp", "price": 30, "currency": "EUR",
                   "address": {"street": "Main St 1", "city": "Ulm"},
                   "weight": 900, "dimensions": {"width": 20}})
        );
    }

    #[test]
    fn an_unknown_operation_names_the_valid_ones() {
        let text = problems("current = 2\n[[upcast]]\nfrom = 1\ncopy = { a = \"b\" }\n");
        for needle in ["copy", "rename", "move", "default", "drop"] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let text = problems("current = 2\n[[steps]]\nfrom = 1\n");
        assert!(text.contains("steps") && text.contains("upcast"), "{text}");
    }

    #[test]
    fn version_problems_are_each_named() {
        let cases = [
            ("current = 2\n[[upcast]]\nfrom = 1\nto = 1\n", "cycle"),
            (
                "current = 3\n[[upcast]]\nfrom = 2\nto = 1\n[[upcast]]\nfrom = 1\n",
                "cycle",
            ),
            ("current = 3\n[[upcast]]\nfrom = 1\nto = 3\n", "skips"),
            (
                "current = 3\n[[upcast]]\nfrom = 1\n[[upcast]]\nfrom = 1\n",
                "two steps from version 1",
            ),
            (
                "current = 4\n[[upcast]]\nfrom = 1\n[[upcast]]\nfrom = 3\n",
                "no step from version 2",
            ),
            (
                "current = 4\n[[upcast]]\nfrom = 1\n[[upcast]]\nfrom = 2\n",
                "no step from version 3",
            ),
            (
                "current = 2\n[[upcast]]\nfrom = 1\n[[upcast]]\nfrom = 2\n",
                "does not match",
            ),
            ("current = 1\n[[upcast]]\nfrom = 1\n", "does not match"),
            ("current = 0\n", "start at 1"),
            (
                "current = 2\n[[upcast]]\nfrom = 0\n[[upcast]]\nfrom = 1\n",
                "start at 1",
            ),
        ];
        for (toml, needle) in cases {
            let text = problems(toml);
            assert!(text.contains(needle), "{needle:?} for\n{toml}\ngot: {text}");
        }
    }

    #[test]
    fn step_problems_are_each_named() {
        let cases = [
            (
                r#"rename = { name = "title", label = "title" }"#,
                "onto one place",
            ),
            (r#"move = { a = "x.y", b = "x" }"#, "onto one place"),
            (
                r#"rename = { a = "b", b = "c" }"#,
                "rename onto an existing field",
            ),
            (
                r#"rename = { a = "b" }
drop = ["b"]"#,
                "rename onto an existing field",
            ),
            (
                r#"move = { a = "b.c" }
drop = ["b"]"#,
                "rename onto an existing field",
            ),
            (
                r#"move = { "a.b" = "c", a = "d" }"#,
                "takes each field away once",
            ),
            (
                r#"rename = { a = "b" }
drop = ["a"]"#,
                "takes each field away once",
            ),
            (r#"rename = { a = "b.c" }"#, "use move"),
            (r#"rename = { a = "a" }"#, "onto itself"),
            (r#"rename = { a = "version" }"#, "reserved"),
            (r#"default = { _sync = 1 }"#, "reserved"),
            (r#"move = { a = "b..c" }"#, "must not be empty"),
            (r#"drop = [""]"#, "must not be empty"),
            (r#"move = { a = 3 }"#, "as text"),
            (
                r#"default = { a = [[1]] }"#,
                "array directly inside an array",
            ),
            (
                r#"default = { a = 1, "a.b" = 2 }"#,
                "one default inside another",
            ),
            (
                r#"default = { a = 1 }
drop = ["a"]"#,
                "a default fills an absent field",
            ),
            (
                r#"default = { "b.c" = 1 }
rename = { a = "b" }"#,
                "a default fills an absent field",
            ),
        ];
        for (ops, needle) in cases {
            let text = problems(&format!("current = 2\n[[upcast]]\nfrom = 1\n{ops}\n"));
            assert!(text.contains(needle), "{needle:?} for\n{ops}\ngot: {text}");
            assert!(text.contains("the step from version 1"), "{text}");
        }
        // A default exactly on a move's target fills it when the move found nothing.
        let h = one_step("rename = { qty = \"quantity\" }\ndefault = { quantity = 0 }");
        assert_eq!(create(&h, json!({})), json!({"quantity": 0}));
        assert_eq!(create(&h, json!({"qty": 4})), json!({"quantity": 4}));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = SchemaHistory::from_toml(
            "current = 5\n[[upcast]]\nfrom = 1\nrename = { a = \"version\" }\n[[upcast]]\nfrom = 3\n",
        )
        .expect_err("refused");
        let list = err.problems();
        assert!(list.len() >= 3, "{list:?}");
        assert!(list
            .iter()
            .all(|p| p.starts_with("schema history is inconsistent")));
    }
}
