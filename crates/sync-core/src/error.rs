//! Validation errors, and what every error the handlers meet declares about
//! itself ([`Classify`]): a stable code and its ack/nack [`Disposition`].

use thiserror::Error;

/// Whether retrying the same message can ever succeed.
///
/// `Permanent` errors go to the dead-letter topic at once; `Transient` ones are
/// answered with a 5xx so Pub/Sub redelivers the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The message itself is wrong: retrying cannot help.
    Permanent,
    /// Something around the message failed (a backend, contention): retry later.
    Transient,
}

/// An error that says what it is: a stable machine code, for dead-letter
/// attributes and logs, and whether retrying the same message can help.
///
/// ```
/// use sync_core::{Classify, Disposition, ValidationError};
/// let error = ValidationError::MissingField("entity_id");
/// assert_eq!(error.code(), "missing_field");
/// assert_eq!(error.disposition(), Disposition::Permanent);
/// ```
pub trait Classify {
    /// Stable machine code of this error, for dead-letter attributes and logs.
    fn code(&self) -> &'static str;

    /// Whether retrying the same message can ever succeed.
    fn disposition(&self) -> Disposition;
}

impl<T: Classify + ?Sized> Classify for &T {
    fn code(&self) -> &'static str {
        (**self).code()
    }

    fn disposition(&self) -> Disposition {
        (**self).disposition()
    }
}

/// Why a message's data is not an acceptable change event.
///
/// Every variant is permanent and has a stable machine code ([`Classify::code`])
/// used as the `error_code` attribute of dead-lettered messages and in logs.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationError {
    /// The data is not UTF-8 JSON, or not a JSON object.
    #[error("message data is not a JSON object: {0}")]
    InvalidJson(String),
    /// A required field is absent or null.
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The offending field.
        field: &'static str,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// `operation` is not one of create, update, delete.
    #[error("operation `{0}` is not one of create, update, delete")]
    InvalidOperation(String),
    /// `timestamp` is not ISO-8601.
    #[error("timestamp `{value}` is not ISO-8601: {reason}")]
    InvalidTimestamp {
        /// The text received.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// `entity_id` cannot be a Datastore key name.
    #[error("entity_id is invalid: {0}")]
    InvalidEntityId(String),
    /// `kind` cannot be a Datastore kind.
    #[error("kind is invalid: {0}")]
    InvalidKind(String),
    /// `schema_version` is not one the schema history knows
    /// ([`crate::ingest::schema`]).
    #[error("schema_version {version} is not supported (supported: {})", supported(*.oldest, *.current))]
    UnsupportedSchemaVersion {
        /// The version received.
        version: i64,
        /// The oldest version the history upcasts.
        oldest: i64,
        /// The current version.
        current: i64,
    },
    /// User data tries to set a property the sync function owns.
    #[error("field `{0}` is reserved for the sync function's bookkeeping")]
    ReservedField(String),
    /// A property name Datastore would refuse.
    #[error("field name at `{path}` is invalid: {reason}")]
    InvalidFieldName {
        /// Where the name occurs (dotted path of its parents).
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A value Datastore cannot represent.
    #[error("value at `{path}` is not supported: {reason}")]
    UnsupportedValue {
        /// Dotted path of the value.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// The entity would exceed Datastore's entity size limit.
    #[error("entity would be about {bytes} bytes, over the {limit}-byte limit")]
    EntityTooLarge {
        /// Estimated encoded size.
        bytes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Embedded entities nest deeper than Datastore allows.
    #[error("data nests {depth} entity values deep at `{path}`, over the limit of {limit}")]
    TooDeep {
        /// Dotted path of the most deeply nested property.
        path: String,
        /// Nesting depth found.
        depth: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The entity would have more index entries than Datastore allows.
    #[error("the entity would have {entries} index entries, over the limit of {limit}")]
    TooManyIndexEntries {
        /// Index entries counted (user values and bookkeeping).
        entries: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A key the event's entity needs would exceed Datastore's key size limit.
    #[error("the {key} key would be {bytes} bytes, over the {limit}-byte limit")]
    KeyTooLarge {
        /// Which key: `entity`, `tombstone` or `conflict record`.
        key: &'static str,
        /// Its size as Datastore counts it.
        bytes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// `event_id` cannot identify a change: empty, or longer than a key name.
    #[error("event_id is invalid: {0}")]
    InvalidEventId(String),
    /// `removed` on an event that is not an update.
    #[error("`removed` lists fields on a {0}; only an update removes fields")]
    RemovalNotAllowed(&'static str),
    /// A field both set in `data` and listed in `removed`.
    #[error("field `{0}` is both set in `data` and listed in `removed`")]
    RemovedFieldInData(String),
    /// `removed` lists more fields than one event may remove.
    #[error("`removed` lists {count} fields, over the limit of {limit}")]
    TooManyRemoved {
        /// Names listed.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A removal the schema history cannot bring to the current version: the
    /// field (or part of it) moves into an object, and removals name
    /// top-level fields.
    #[error("the removal of `{field}` cannot be upcast: the schema history moves it to `{target}`, inside an object, and `removed` names top-level fields")]
    UnsupportedRemoval {
        /// The field removed, as the event names it.
        field: String,
        /// Where the history moves it (or part of it).
        target: String,
    },
    /// The timestamp is too far in the future to be trusted.
    #[error("timestamp {timestamp} is {ahead_secs} s ahead of the receiving clock (limit {limit_secs} s)")]
    ClockSkew {
        /// The event's timestamp, RFC 3339.
        timestamp: String,
        /// How far ahead it is.
        ahead_secs: i64,
        /// The configured limit.
        limit_secs: i64,
    },
}

/// `1`, or `1 to 3`.
fn supported(oldest: i64, current: i64) -> String {
    if oldest == current {
        current.to_string()
    } else {
        format!("{oldest} to {current}")
    }
}

impl Classify for ValidationError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::MissingField(_) => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::InvalidOperation(_) => "invalid_operation",
            Self::InvalidTimestamp { .. } => "invalid_timestamp",
            Self::InvalidEntityId(_) => "invalid_entity_id",
            Self::InvalidKind(_) => "invalid_kind",
            Self::UnsupportedSchemaVersion { .. } => "unsupported_schema_version",
            Self::ReservedField(_) => "reserved_field",
            Self::InvalidFieldName { .. } => "invalid_field_name",
            Self::UnsupportedValue { .. } => "unsupported_value",
            Self::EntityTooLarge { .. } => "entity_too_large",
            Self::TooDeep { .. } => "too_deep",
            Self::TooManyIndexEntries { .. } => "too_many_index_entries",
            Self::KeyTooLarge { .. } => "key_too_large",
            Self::InvalidEventId(_) => "invalid_event_id",
            Self::RemovalNotAllowed(_) => "removal_not_allowed",
            Self::RemovedFieldInData(_) => "removed_field_in_data",
            Self::TooManyRemoved { .. } => "too_many_removed",
            Self::UnsupportedRemoval { .. } => "unsupported_removal",
            Self::ClockSkew { .. } => "clock_skew",
        }
    }

    /// Always [`Disposition::Permanent`]: the same bytes fail the same way.
    fn disposition(&self) -> Disposition {
        Disposition::Permanent
    }
}
