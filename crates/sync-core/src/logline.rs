//! One log line, one Cloud Logging entry: the size budget every line of both
//! functions keeps ([`LINE_BUDGET_BYTES`], well under Logging's 256 KiB per
//! entry), how a line is measured ([`Size`]: as JSON text and as the protobuf
//! `Struct` Logging stores, both within the budget), and how a JSON value that
//! is over it is shortened.
//!
//! [`fit`] shortens the largest values first (strings cut to a prefix, arrays
//! lose their tail, members left out) until the whole fits, naming each value
//! it cut by its JSON Pointer; the line says so with the fields of
//! [`crate::wire::audit::Shortened`] and the digests ([`Digest`]) of what was
//! there. [`fit_line`] is every writer's last guard.

use crate::wire::audit::{LineDigest, Shortened};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;

/// The most bytes one log line may take, as JSON text and as Logging's
/// protobuf (see the module docs).
pub const LINE_BUDGET_BYTES: usize = 200_000;

/// Room kept free while shortening for what shortening adds to a line: the
/// digests, the flags and the list of shortened fields.
pub const RESERVED_BYTES: usize = 24 * 1024;

/// The list of shortened fields names pointers up to this many bytes; the
/// count says how many there were in all.
pub const LISTED_POINTER_BYTES: usize = 16 * 1024;

/// A value cut shorter than this is left out instead (when leaving out is
/// allowed): a prefix that small tells a reader little.
pub const MIN_KEPT_BYTES: usize = 1024;

/// At most this many bytes (escaped) of free text that may echo input, such
/// as an error message, in one log field.
pub const FIELD_TEXT_BYTES: usize = 8 * 1024;

/// At most this many bytes (escaped) of an id from the wire (message id,
/// correlation id) recorded on a delivery's span: a span's fields are
/// repeated on every line of the delivery, twice (`span` and `spans`).
pub const ID_TEXT_BYTES: usize = 1024;

/// At most this many bytes (escaped) of one value's JSON text in a line that
/// carries two (a conflict's winner and loser): both, with everything else
/// of the line, stay well within the budget.
pub const VALUE_TEXT_BYTES: usize = 64 * 1024;

/// What a JSON value costs in a log line: its JSON text, and its protobuf
/// encoding as a `google.protobuf.Value` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    /// Bytes of the compact JSON text.
    pub json: usize,
    /// Bytes of the protobuf encoding.
    pub proto: usize,
}

impl Size {
    /// The size of `value`.
    ///
    /// ```
    /// use sync_core::logline::Size;
    /// let s = Size::of(&serde_json::json!([1, 2, 3]));
    /// assert_eq!(s.json, "[1,2,3]".len());
    /// assert!(s.proto > s.json);
    /// ```
    pub fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::new(4, 2),
            Value::Bool(b) => Self::new(if *b { 4 } else { 5 }, 2),
            Value::Number(n) => Self::new(number_len(n), 9),
            Value::String(s) => Self::new(json_str_len(s), nested(s.len())),
            Value::Array(items) => {
                let mut json = 2 + items.len().saturating_sub(1);
                let mut content = 0;
                for item in items {
                    let s = Self::of(item);
                    json += s.json;
                    content += nested(s.proto);
                }
                Self::new(json, nested(content))
            }
            Value::Object(map) => {
                let mut json = 2 + map.len().saturating_sub(1);
                let mut content = 0;
                for (k, v) in map {
                    let s = Self::of(v);
                    json += json_str_len(k) + 1 + s.json;
                    content += nested(member_proto(k, s.proto));
                }
                Self::new(json, nested(content))
            }
        }
    }

    const fn new(json: usize, proto: usize) -> Self {
        Self { json, proto }
    }

    /// Whether both measures are within `budget`.
    pub const fn fits(self, budget: usize) -> bool {
        self.json <= budget && self.proto <= budget
    }

    /// The larger of the two measures.
    pub fn weight(self) -> usize {
        self.json.max(self.proto)
    }

    /// How far each measure is over `budget` (zero where it is not).
    fn over(self, budget: usize) -> Self {
        Self::new(
            self.json.saturating_sub(budget),
            self.proto.saturating_sub(budget),
        )
    }

    fn minus(self, other: Self) -> Self {
        Self::new(
            self.json.saturating_sub(other.json),
            self.proto.saturating_sub(other.proto),
        )
    }

    fn plus(self, other: Self) -> Self {
        Self::new(self.json + other.json, self.proto + other.proto)
    }

    const fn is_zero(self) -> bool {
        self.json == 0 && self.proto == 0
    }
}

/// Bytes of a varint holding `n`.
fn varint_len(n: usize) -> usize {
    let mut n = n;
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// A length-delimited field of `len` bytes: tag, length, content.
fn nested(len: usize) -> usize {
    1 + varint_len(len) + len
}

/// A `Struct` map entry's content: the key and the value, each a field.
fn member_proto(key: &str, value_proto: usize) -> usize {
    nested(key.len()) + nested(value_proto)
}

fn number_len(n: &serde_json::Number) -> usize {
    n.to_string().len()
}

/// Bytes one character takes inside a JSON string, as serde_json writes it.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes of `s` as a JSON string, quotes included.
pub fn json_str_len(s: &str) -> usize {
    2 + s.chars().map(escaped_char_len).sum::<usize>()
}

/// The longest prefix of `s` whose JSON-escaped text (without quotes) takes
/// at most `max_escaped` bytes and whose own bytes are at most `max_raw`.
pub fn prefix_within(s: &str, max_escaped: usize, max_raw: usize) -> &str {
    let mut escaped = 0;
    for (i, c) in s.char_indices() {
        escaped += escaped_char_len(c);
        if escaped > max_escaped || i + c.len_utf8() > max_raw {
            return &s[..i];
        }
    }
    s
}

/// Lower-case hex SHA-256 of `bytes`.
///
/// ```
/// assert_eq!(
///     sync_core::logline::sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// What a value was in full: the byte length and SHA-256 of exactly the
/// bytes it was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Length in bytes.
    pub bytes: usize,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl Digest {
    /// Of `bytes` as they are.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.len(),
            sha256: sha256_hex(bytes),
        }
    }

    /// Of `value` serialized as compact JSON (serde_json: no whitespace,
    /// object keys in byte order, only `"`, `\` and control characters
    /// escaped), without holding that text: what an unshortened line holds at
    /// that place, byte for byte.
    pub fn of_json(value: &Value) -> Self {
        struct Hashing {
            hasher: Sha256,
            bytes: usize,
        }
        impl std::io::Write for Hashing {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.hasher.update(buf);
                self.bytes += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = Hashing {
            hasher: Sha256::new(),
            bytes: 0,
        };
        // Writing JSON values to a writer that never fails cannot fail.
        let _ = serde_json::to_writer(&mut w, value);
        Self {
            bytes: w.bytes,
            sha256: hex(&w.hasher.finalize()),
        }
    }
}

/// How [`fit`] may change the values of the part it works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cut strings and arrays, leave object members out (data whose shape
    /// is the user's: a snapshot).
    LeaveOut,
    /// Only cut strings, and none below [`MIN_KEPT_BYTES`]; every key,
    /// number and array element stays (an entry's own fields, whose shape
    /// is a contract).
    CutText,
}

/// One phase of [`fit`]: the part of the object it works on (a JSON
/// Pointer; `""` is the whole) and how.
#[derive(Debug, Clone, Copy)]
pub struct Phase<'a> {
    /// JSON Pointer of the part.
    pub pointer: &'a str,
    /// What may be done to it.
    pub mode: Mode,
}

/// `key` as one JSON Pointer reference token (`~` → `~0`, `/` → `~1`).
pub fn pointer_token(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

/// Shortens `root` phase by phase until it [`fits`](Size::fits) `budget`,
/// largest values first within each phase (see the module docs); returns the
/// JSON Pointers of the values left out or cut, in that order. A phase whose
/// pointer names nothing is skipped; when every phase is spent, `root` may
/// still be over (numbers and keys are never cut).
///
/// ```
/// use serde_json::json;
/// use sync_core::logline::{fit, Mode, Phase, Size};
/// let mut entry = json!({"id": "e-1", "data": {"name": "n", "blob": "x".repeat(5000)}});
/// let cut = fit(&mut entry, 3000, &[Phase { pointer: "/data", mode: Mode::LeaveOut }]);
/// assert_eq!(cut, ["/data/blob"]);
/// assert!(Size::of(&entry).fits(3000));
/// assert_eq!(entry["data"]["name"], "n");
/// ```
pub fn fit(root: &mut Value, budget: usize, phases: &[Phase<'_>]) -> Vec<String> {
    let mut cuts = Vec::new();
    for phase in phases {
        // A shed is an estimate where nesting changes length prefixes:
        // measure again and go on until it fits or nothing more gives.
        for _ in 0..4 {
            let need = Size::of(root).over(budget);
            if need.is_zero() {
                return cuts;
            }
            let Some(part) = root.pointer_mut(phase.pointer) else {
                break;
            };
            let before = cuts.len();
            let shed = shed(part, phase.pointer, need, phase.mode, &mut cuts);
            if shed.is_zero() && cuts.len() == before {
                break;
            }
        }
    }
    cuts
}

/// Whether a value could give something up.
fn shrinkable(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => false,
    }
}

/// Shortens `value` (at pointer `at`) by about `need`; returns what it shed.
fn shed(value: &mut Value, at: &str, need: Size, mode: Mode, cuts: &mut Vec<String>) -> Size {
    let before = Size::of(value);
    match value {
        Value::String(s) => {
            // Text of an entry's own fields keeps a readable beginning.
            let floor = if mode == Mode::CutText {
                MIN_KEPT_BYTES
            } else {
                0
            };
            let max_escaped = before.json.saturating_sub(2 + need.json).max(floor);
            let max_raw = s.len().saturating_sub(need.proto).max(floor);
            let keep = prefix_within(s, max_escaped, max_raw).len();
            if keep == s.len() {
                return Size::default();
            }
            s.truncate(keep);
            cuts.push(at.to_string());
        }
        Value::Array(items) => {
            let sizes: Vec<Size> = items.iter().map(Size::of).collect();
            let largest = sizes
                .iter()
                .enumerate()
                .max_by_key(|(i, s)| (s.weight(), std::cmp::Reverse(*i)))
                .map(|(i, s)| (i, *s));
            if let Some((i, size)) = largest {
                let worth = size.weight() >= need.weight() + MIN_KEPT_BYTES;
                if mode == Mode::CutText || (worth && shrinkable(&items[i])) {
                    return shed_children(items, at, need, mode, cuts, &sizes);
                }
            }
            // Leave the tail out until enough is gone.
            let mut gone = Size::default();
            while !need.minus(gone).is_zero() {
                let Some(size) = sizes.get(items.len().wrapping_sub(1)) else {
                    break;
                };
                items.pop();
                gone = gone.plus(Size::new(size.json + 1, nested(size.proto)));
            }
            if gone.is_zero() {
                return gone;
            }
            cuts.push(at.to_string());
        }
        Value::Object(map) => return shed_members(map, at, need, mode, cuts),
        _ => return Size::default(),
    }
    before.minus(Size::of(value))
}

/// Array elements, largest first, each shortened by what is still needed.
fn shed_children(
    items: &mut [Value],
    at: &str,
    need: Size,
    mode: Mode,
    cuts: &mut Vec<String>,
    sizes: &[Size],
) -> Size {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i].weight()), i));
    let mut gone = Size::default();
    for i in order {
        let left = need.minus(gone);
        if left.is_zero() {
            break;
        }
        gone = gone.plus(shed(&mut items[i], &format!("{at}/{i}"), left, mode, cuts));
    }
    gone
}

/// Object members, largest first: shortened when what is left is worth
/// keeping (always, in [`Mode::CutText`]), else left out.
fn shed_members(
    map: &mut Map<String, Value>,
    at: &str,
    need: Size,
    mode: Mode,
    cuts: &mut Vec<String>,
) -> Size {
    let mut members: Vec<(String, Size)> =
        map.iter().map(|(k, v)| (k.clone(), Size::of(v))).collect();
    members.sort_by(|a, b| b.1.weight().cmp(&a.1.weight()).then_with(|| a.0.cmp(&b.0)));
    let mut gone = Size::default();
    for (key, size) in members {
        let left = need.minus(gone);
        if left.is_zero() {
            break;
        }
        let here = format!("{at}/{}", pointer_token(&key));
        let Some(value) = map.get_mut(&key) else {
            continue;
        };
        let worth = size.weight() >= left.weight() + MIN_KEPT_BYTES && shrinkable(value);
        if mode == Mode::CutText || worth {
            gone = gone.plus(shed(value, &here, left, mode, cuts));
        } else {
            map.remove(&key);
            let member = Size::new(
                json_str_len(&key) + 2 + size.json,
                nested(member_proto(&key, size.proto)),
            );
            gone = gone.plus(member);
            cuts.push(here);
        }
    }
    gone
}

/// The record of `cuts` an entry carries: as many pointers as fit in
/// [`LISTED_POINTER_BYTES`], in order, and how many there were.
pub fn shortened(cuts: &[String]) -> Shortened {
    let mut listed = Vec::new();
    let mut bytes = 0;
    for c in cuts {
        bytes += json_str_len(c) + 1;
        if bytes > LISTED_POINTER_BYTES {
            break;
        }
        listed.push(c.clone());
    }
    Shortened {
        shortened_fields: listed,
        shortened_field_count: cuts.len(),
    }
}

/// Inserts the fields of `record` (a serde type of `wire::audit` that
/// serializes as an object) into `object`.
pub fn insert_fields(object: &mut Value, record: &impl serde::Serialize) {
    if let (Value::Object(target), Ok(Value::Object(fields))) =
        (object, serde_json::to_value(record))
    {
        target.extend(fields);
    }
}

/// `text` as it may appear in a log line: whole when its JSON-escaped form
/// takes at most `max_escaped` bytes, else a prefix, `…` and the full length.
/// For free text that may echo input (error messages, ids from the wire).
///
/// ```
/// use sync_core::logline::excerpt;
/// assert_eq!(excerpt("short", 100), "short");
/// let long = "x".repeat(5000);
/// let cut = excerpt(&long, 100);
/// assert!(cut.len() < 150 && cut.ends_with("(5000 bytes in all)"), "{cut}");
/// ```
pub fn excerpt(text: &str, max_escaped: usize) -> Cow<'_, str> {
    if json_str_len(text) - 2 <= max_escaped {
        return Cow::Borrowed(text);
    }
    let room = max_escaped.saturating_sub(32);
    let head = prefix_within(text, room, room);
    Cow::Owned(format!("{head}… ({} bytes in all)", text.len()))
}

/// `value` as compact JSON text for a log field, cut to at most
/// `max_escaped` bytes once escaped in the line; with the [`Digest`] of the
/// whole text when it was cut.
pub fn json_excerpt(value: &Value, max_escaped: usize) -> (String, Option<Digest>) {
    let text = value.to_string();
    if json_str_len(&text) - 2 <= max_escaped {
        return (text, None);
    }
    let digest = Digest::of_bytes(text.as_bytes());
    let keep = prefix_within(&text, max_escaped, max_escaped).len();
    let mut text = text;
    text.truncate(keep);
    (text, Some(digest))
}

/// The line to write instead of `line` (one JSON object, or any text) when
/// it is over `budget`; `None` when it fits. The replacement is one JSON
/// object within the budget: the line's own object with its largest texts
/// cut (then, if that is not enough, its largest values left out), or for a
/// line that is not a JSON object, its text cut under `message`; marked with
/// [`LineDigest`] (the length and SHA-256 of the line as it was, newline
/// excluded) and [`Shortened`]. It ends with a newline when `line` did.
pub fn fit_line(line: &[u8], budget: usize) -> Option<Vec<u8>> {
    let (body, newline) = match line.strip_suffix(b"\n") {
        Some(body) => (body, true),
        None => (line, false),
    };
    // Protobuf takes at most 5.5 times the JSON's bytes (a one-digit
    // number in an array: 2 bytes of JSON, 11 of protobuf), so a line this
    // short fits whatever it holds, and is not parsed.
    if body.len() <= budget * 2 / 11 {
        return None;
    }
    let mut value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => {
            if Size::of(&v).fits(budget) {
                return None;
            }
            v
        }
        // Text is stored as text: it fits when its bytes do.
        _ if body.len() <= budget => return None,
        _ => {
            let mut object = Map::new();
            object.insert(
                "message".into(),
                Value::String(String::from_utf8_lossy(body).into_owned()),
            );
            Value::Object(object)
        }
    };
    let digest = Digest::of_bytes(body);
    let target = budget.saturating_sub(RESERVED_BYTES);
    let cuts = fit(
        &mut value,
        target,
        &[
            Phase {
                pointer: "",
                mode: Mode::CutText,
            },
            Phase {
                pointer: "",
                mode: Mode::LeaveOut,
            },
        ],
    );
    insert_fields(
        &mut value,
        &LineDigest {
            log_line_truncated: true,
            log_line_bytes: digest.bytes,
            log_line_sha256: digest.sha256,
        },
    );
    insert_fields(&mut value, &shortened(&cuts));
    let mut out = serde_json::to_vec(&value).ok()?;
    if newline {
        out.push(b'\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proto_of_serialized(v: &Value) -> usize {
        Size::of(v).proto
    }

    #[test]
    fn json_sizes_are_exact() {
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(-12.5),
            json!(u64::MAX),
            json!("a\"b\\c\n\u{1}é/"),
            json!([]),
            json!({}),
            json!([1, "x", {"k": [null, {"é": "\t"}]}]),
            json!({"a": 1, "b~/": [true, "ü"], "c": {}}),
        ] {
            let text = serde_json::to_string(&v).expect("serializes");
            assert_eq!(Size::of(&v).json, text.len(), "{text}");
        }
    }

    #[test]
    fn protobuf_sizes_follow_the_encoding() {
        // Value{number_value}: tag + 8 bytes.
        assert_eq!(proto_of_serialized(&json!(1)), 9);
        // Value{string_value "ab"}: tag, length, 2 bytes.
        assert_eq!(proto_of_serialized(&json!("ab")), 4);
        // Value{list_value{values: [Value{number}]}}: 1 + 1 + (1 + 1 + 9).
        assert_eq!(proto_of_serialized(&json!([1])), 13);
        // Value{struct_value{fields: {"a": Value{bool}}}}: entry = key (3) + value (1 + 1 + 2).
        assert_eq!(
            proto_of_serialized(&json!({"a": true})),
            1 + 1 + 1 + 1 + 3 + 4
        );
        // Numbers in arrays cost far more than their JSON.
        let numbers = json!(vec![7; 1000]);
        let s = Size::of(&numbers);
        assert!(s.proto > 5 * s.json, "{s:?}");
    }

    #[test]
    fn the_largest_value_is_shortened_first_and_small_ones_stay() {
        let mut v = json!({"data": {
            "name": "kept",
            "big": "b".repeat(50_000),
            "bigger": "c".repeat(80_000),
            "n": 5,
        }});
        let mut once = v.clone();
        // 130 KB into 60 KB: `bigger` can give 70 KB and keep 10 KB.
        let cuts = fit(
            &mut once,
            60_000,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/bigger"]);
        assert!(Size::of(&once).fits(60_000));
        assert_eq!(once["data"]["big"].as_str().map(str::len), Some(50_000));
        // 130 KB into 40 KB: `bigger` alone cannot give 90 KB and keep
        // 1 KiB, so it goes; then `big` is cut to what fits.
        let cuts = fit(
            &mut v,
            40_000,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/bigger", "/data/big"]);
        assert!(Size::of(&v).fits(40_000));
        assert_eq!(v["data"]["name"], "kept");
        assert_eq!(v["data"]["n"], 5);
        assert!(v["data"].get("bigger").is_none());
        let big = v["data"]["big"].as_str().expect("cut, not left out");
        assert!(big.len() > 35_000 && big.len() < 40_000, "{}", big.len());
    }

    #[test]
    fn a_large_value_is_cut_not_dropped_when_enough_remains() {
        let mut v = json!({"data": {"blob": "x".repeat(900_000), "name": "n"}});
        let cuts = fit(
            &mut v,
            LINE_BUDGET_BYTES,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/blob"]);
        let size = Size::of(&v);
        assert!(size.fits(LINE_BUDGET_BYTES), "{size:?}");
        assert!(
            size.json > LINE_BUDGET_BYTES - 1000,
            "cut to what fits: {size:?}"
        );
    }

    #[test]
    fn strings_are_cut_at_character_boundaries_and_escapes_count() {
        let mut v = json!({"t": "é\"".repeat(10_000)});
        let cuts = fit(
            &mut v,
            5_000,
            &[Phase {
                pointer: "",
                mode: Mode::CutText,
            }],
        );
        assert_eq!(cuts, ["/t"]);
        let text = serde_json::to_string(&v).expect("valid");
        assert!(text.len() <= 5_000, "{}", text.len());
        assert!(v["t"].as_str().is_some_and(|s| s.starts_with("é\"é")));
    }

    #[test]
    fn number_arrays_are_cut_by_their_protobuf_size() {
        let mut v = json!({"data": {"readings": vec![3; 50_000], "unit": "C"}});
        assert!(Size::of(&v).json < 110_000, "under the budget as JSON");
        assert!(!Size::of(&v).fits(LINE_BUDGET_BYTES), "over it as protobuf");
        let cuts = fit(
            &mut v,
            LINE_BUDGET_BYTES,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/readings"]);
        assert!(Size::of(&v).fits(LINE_BUDGET_BYTES));
        let kept = v["data"]["readings"].as_array().map_or(0, Vec::len);
        assert!(kept > 10_000 && kept < 50_000, "the tail went: {kept}");
        assert_eq!(v["data"]["unit"], "C");
    }

    #[test]
    fn the_largest_element_of_an_array_is_shortened_when_it_can_give_enough() {
        let mut v = json!({"data": {"docs": ["small", "y".repeat(100_000), "also small"]}});
        let cuts = fit(
            &mut v,
            30_000,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/docs/1"]);
        assert_eq!(v["data"]["docs"][0], "small");
        assert_eq!(v["data"]["docs"][2], "also small");
    }

    #[test]
    fn nested_objects_keep_their_small_members() {
        let mut v = json!({"data": {"doc": {"title": "t", "body": "z".repeat(300_000)}}});
        let cuts = fit(
            &mut v,
            LINE_BUDGET_BYTES,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/doc/body"]);
        assert_eq!(v["data"]["doc"]["title"], "t");
    }

    #[test]
    fn many_small_members_are_left_out_and_counted() {
        let data: Map<String, Value> = (0..40_000)
            .map(|i| (format!("field_{i:05}"), json!("v".repeat(20))))
            .collect();
        let mut v = json!({ "data": data });
        let cuts = fit(
            &mut v,
            LINE_BUDGET_BYTES - RESERVED_BYTES,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert!(cuts.len() > 10_000, "{}", cuts.len());
        let record = shortened(&cuts);
        assert_eq!(record.shortened_field_count, cuts.len());
        assert!(record.shortened_fields.len() < cuts.len());
        insert_fields(&mut v, &record);
        assert!(Size::of(&v).fits(LINE_BUDGET_BYTES));
    }

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        let mut v = json!({"data": {"a/b~c": "q".repeat(10_000), "k": 1}});
        let cuts = fit(
            &mut v,
            500,
            &[Phase {
                pointer: "/data",
                mode: Mode::LeaveOut,
            }],
        );
        assert_eq!(cuts, ["/data/a~1b~0c"]);
        assert!(v.pointer("/data/a~1b~0c").is_none());
    }

    #[test]
    fn cut_text_keeps_every_key_and_number() {
        let mut v = json!({"severity": "INFO", "n": 12345, "msg": "m".repeat(10_000), "attrs": {"a": "a".repeat(8_000), "b": "b"}});
        let cuts = fit(
            &mut v,
            6_000,
            &[Phase {
                pointer: "",
                mode: Mode::CutText,
            }],
        );
        assert_eq!(cuts, ["/msg", "/attrs/a"]);
        assert!(Size::of(&v).fits(6_000));
        let msg = v["msg"].as_str().map_or(0, str::len);
        assert_eq!(msg, MIN_KEPT_BYTES, "text keeps a readable beginning");
        assert_eq!(v["severity"], "INFO");
        assert_eq!(v["n"], 12345);
        assert_eq!(v["attrs"]["b"], "b");
    }

    #[test]
    fn phases_stop_as_soon_as_it_fits() {
        let mut v = json!({"first": {"x": "1".repeat(5_000)}, "second": {"y": "2".repeat(5_000)}});
        let cuts = fit(
            &mut v,
            6_000,
            &[
                Phase {
                    pointer: "/first",
                    mode: Mode::LeaveOut,
                },
                Phase {
                    pointer: "/second",
                    mode: Mode::LeaveOut,
                },
            ],
        );
        assert_eq!(cuts, ["/first/x"]);
        assert_eq!(v["second"]["y"].as_str().map(str::len), Some(5_000));
    }

    #[test]
    fn digests_are_of_the_compact_json() {
        let v = json!({"b": [1, 2], "a": "é"});
        let text = serde_json::to_vec(&v).expect("serializes");
        assert_eq!(Digest::of_json(&v), Digest::of_bytes(&text));
        assert_eq!(Digest::of_json(&v).bytes, text.len());
    }

    #[test]
    fn a_json_excerpt_carries_the_digest_of_the_whole_text() {
        let v = json!({"v": "w".repeat(1000)});
        let (text, digest) = json_excerpt(&v, 100);
        assert!(text.len() <= 100);
        let whole = v.to_string();
        assert!(whole.starts_with(&text));
        assert_eq!(digest, Some(Digest::of_bytes(whole.as_bytes())));
        assert_eq!(json_excerpt(&json!(1), 100), ("1".into(), None));
    }

    #[test]
    fn lines_that_fit_pass_and_others_are_shortened_and_marked() {
        assert_eq!(fit_line(b"{\"message\":\"hi\"}\n", LINE_BUDGET_BYTES), None);
        let small = serde_json::to_vec(&json!({"m": "x".repeat(100_000)})).expect("json");
        assert_eq!(
            fit_line(&small, LINE_BUDGET_BYTES),
            None,
            "under the budget"
        );
        let mut line = serde_json::to_vec(&json!({
            "severity": "INFO",
            "message": "event processed",
            "span": {"correlation_id": "c".repeat(300_000)},
            "spans": [{"correlation_id": "c".repeat(300_000)}],
        }))
        .expect("json");
        line.push(b'\n');
        let out = fit_line(&line, LINE_BUDGET_BYTES).expect("shortened");
        assert!(out.len() <= LINE_BUDGET_BYTES && out.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["severity"], "INFO");
        assert_eq!(v["message"], "event processed");
        assert_eq!(v["log_line_truncated"], true);
        assert_eq!(v["log_line_bytes"], line.len() - 1);
        assert_eq!(
            v["log_line_sha256"],
            sha256_hex(&line[..line.len() - 1]),
            "digest of the line as it was"
        );
        assert_eq!(v["shortened_field_count"], 2);
        assert!(Size::of(&v).fits(LINE_BUDGET_BYTES));
    }

    #[test]
    fn a_line_of_numbers_is_shortened_for_its_protobuf_size() {
        let line =
            serde_json::to_vec(&json!({"message": "m", "values": vec![1; 90_000]})).expect("json");
        assert!(line.len() < LINE_BUDGET_BYTES);
        let out = fit_line(&line, LINE_BUDGET_BYTES).expect("over as protobuf");
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert!(Size::of(&v).fits(LINE_BUDGET_BYTES));
        assert_eq!(v["shortened_fields"], json!(["/values"]));
    }

    #[test]
    fn text_that_is_not_json_becomes_a_marked_message() {
        let line = vec![b'z'; 300_000];
        let out = fit_line(&line, LINE_BUDGET_BYTES).expect("shortened");
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(v["log_line_truncated"], true);
        assert_eq!(v["log_line_bytes"], 300_000);
        assert!(v["message"].as_str().is_some_and(|m| m.starts_with("zzz")));
        assert!(out.len() <= LINE_BUDGET_BYTES);
    }

    #[test]
    fn excerpts_fit_their_room_once_escaped() {
        let text = "\u{1}".repeat(1000);
        let cut = excerpt(&text, 200);
        assert!(json_str_len(&cut) - 2 <= 200, "{}", json_str_len(&cut));
        assert!(cut.ends_with("(1000 bytes in all)"));
    }
}
