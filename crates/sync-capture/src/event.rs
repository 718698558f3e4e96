//! The CloudEvent Eventarc delivers for a Datastore entity change, decoded
//! from the request's headers and body.
//!
//! Eventarc posts it in the CloudEvents HTTP binary mode: the attributes are
//! `ce-*` headers, the body is the protobuf [`EntityEventData`] with
//! `Content-Type: application/protobuf` (the trigger must be created with
//! `--event-data-content-type=application/protobuf`). Besides the required
//! `id`, `source`, `specversion` and `type`, and `time`, Datastore adds the
//! extensions `database`, `namespace` (both spelled `(default)` for the
//! defaults), `entity` (the key's path, `kind/id/kind/id…`), `project` and
//! `location`, and with a `.withAuthContext` type `authtype` and `authid`.
//!
//! [`decode`] reads those headers directly, percent-decoding their values as
//! the binding asks, rather than through `cloudevents-sdk`: the few rules
//! needed here are simple, and each refusal gets its own stable code
//! ([`DecodeError::code`]). The W3C `traceparent` header is not read here:
//! `sync-http`'s `TraceContext::from_headers` owns trace headers.
//! [`EntityEvent::to_request`] builds the request back, for tests and the
//! demo, which must deliver events themselves since no emulator emits them.

use crate::proto::EntityEventData;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use prost::Message as _;
use std::fmt;
use sync_core::Disposition;
use thiserror::Error;

/// The request headers an entity event's attributes arrive in.
pub mod header {
    /// CloudEvents spec version; `1.0`.
    pub const SPEC_VERSION: &str = "ce-specversion";
    /// Event id, unique per change (a redelivery repeats it).
    pub const ID: &str = "ce-id";
    /// The database, e.g. `//firestore.googleapis.com/projects/P/databases/(default)`.
    pub const SOURCE: &str = "ce-source";
    /// Event type ([`super::EventType`]).
    pub const TYPE: &str = "ce-type";
    /// When the change happened (RFC 3339).
    pub const TIME: &str = "ce-time";
    /// The entity, as a resource path below the source.
    pub const SUBJECT: &str = "ce-subject";
    /// Database id; `(default)` for the default database.
    pub const DATABASE: &str = "ce-database";
    /// Namespace; `(default)` for the default namespace.
    pub const NAMESPACE: &str = "ce-namespace";
    /// The key's path, `kind/id/kind/id…`.
    pub const ENTITY: &str = "ce-entity";
    /// Project id.
    pub const PROJECT: &str = "ce-project";
    /// The database's Eventarc location.
    pub const LOCATION: &str = "ce-location";
    /// `.withAuthContext` only: the kind of principal that made the change.
    pub const AUTH_TYPE: &str = "ce-authtype";
    /// `.withAuthContext` only: the principal.
    pub const AUTH_ID: &str = "ce-authid";
    /// The body's media type ([`super::PROTOBUF`]).
    pub const CONTENT_TYPE: &str = "content-type";
}

/// The body's media type.
pub const PROTOBUF: &str = "application/protobuf";

/// The CloudEvents spec version Eventarc sends.
pub const SPEC_VERSION: &str = "1.0";

/// How Eventarc names the default database and the default namespace.
pub const DEFAULT_NAME: &str = "(default)";

/// Which change an event type reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// An entity written for the first time: `value` only.
    Created,
    /// An existing entity whose data changed: `value`, `old_value` and
    /// `update_mask`.
    Updated,
    /// An entity deleted: `old_value` only.
    Deleted,
    /// Any of the three; which one is told by which snapshots are present.
    Written,
}

/// A Datastore entity event type: a [`Change`], with or without the
/// authentication context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventType {
    /// The change reported.
    pub change: Change,
    /// Whether the event carries `authtype` and `authid`.
    pub with_auth_context: bool,
}

impl EventType {
    /// Every type, the plain ones first.
    pub const ALL: [Self; 8] = [
        Self::plain(Change::Created),
        Self::plain(Change::Updated),
        Self::plain(Change::Deleted),
        Self::plain(Change::Written),
        Self::with_auth(Change::Created),
        Self::with_auth(Change::Updated),
        Self::with_auth(Change::Deleted),
        Self::with_auth(Change::Written),
    ];

    const fn plain(change: Change) -> Self {
        Self {
            change,
            with_auth_context: false,
        }
    }

    const fn with_auth(change: Change) -> Self {
        Self {
            change,
            with_auth_context: true,
        }
    }

    /// The type's name, e.g. `google.cloud.datastore.entity.v1.written`.
    ///
    /// ```
    /// use sync_capture::event::{Change, EventType};
    /// let t = EventType::parse("google.cloud.datastore.entity.v1.deleted.withAuthContext");
    /// assert_eq!(t.map(|t| (t.change, t.with_auth_context)), Some((Change::Deleted, true)));
    /// assert_eq!(t.map(|t| t.as_str()), Some("google.cloud.datastore.entity.v1.deleted.withAuthContext"));
    /// ```
    pub fn as_str(self) -> &'static str {
        match (self.change, self.with_auth_context) {
            (Change::Created, false) => "google.cloud.datastore.entity.v1.created",
            (Change::Updated, false) => "google.cloud.datastore.entity.v1.updated",
            (Change::Deleted, false) => "google.cloud.datastore.entity.v1.deleted",
            (Change::Written, false) => "google.cloud.datastore.entity.v1.written",
            (Change::Created, true) => "google.cloud.datastore.entity.v1.created.withAuthContext",
            (Change::Updated, true) => "google.cloud.datastore.entity.v1.updated.withAuthContext",
            (Change::Deleted, true) => "google.cloud.datastore.entity.v1.deleted.withAuthContext",
            (Change::Written, true) => "google.cloud.datastore.entity.v1.written.withAuthContext",
        }
    }

    /// The type named `name`, if it is one of the eight.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded Datastore entity event.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityEvent {
    /// CloudEvent `id`: the same for every delivery of one change.
    pub id: String,
    /// CloudEvent `source`.
    pub source: String,
    /// CloudEvent `type`.
    pub event_type: EventType,
    /// CloudEvent `time`, when present.
    pub time: Option<DateTime<Utc>>,
    /// CloudEvent `subject`, when present.
    pub subject: Option<String>,
    /// `database` extension, when present (`(default)` for the default).
    pub database: Option<String>,
    /// `namespace` extension, when present (`(default)` for the default).
    pub namespace: Option<String>,
    /// `entity` extension: the key's path as Eventarc spells it.
    pub entity: Option<String>,
    /// `project` extension.
    pub project: Option<String>,
    /// `location` extension.
    pub location: Option<String>,
    /// `authtype` extension (`.withAuthContext` types).
    pub auth_type: Option<String>,
    /// `authid` extension (`.withAuthContext` types).
    pub auth_id: Option<String>,
    /// The body.
    pub data: EntityEventData,
}

/// Why a request is not a Datastore entity event this crate can read. Every
/// variant is permanent: the same request fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A required CloudEvent attribute header is absent or empty.
    #[error("the CloudEvent attribute header `{0}` is missing")]
    MissingAttribute(&'static str),
    /// An attribute header is present but unusable.
    #[error("the CloudEvent attribute header `{name}` is invalid: {reason}")]
    InvalidAttribute {
        /// The header.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The event type is none of the Datastore entity event types.
    #[error("`{0}` is not a Datastore entity event type")]
    UnknownEventType(String),
    /// The body is not protobuf (a trigger created without
    /// `--event-data-content-type=application/protobuf` sends JSON).
    #[error("the body is `{0}`, not application/protobuf: create the trigger with --event-data-content-type=application/protobuf")]
    UnsupportedContentType(String),
    /// The body does not decode as `EntityEventData`.
    #[error("the body is not a protobuf EntityEventData: {0}")]
    InvalidProtobuf(String),
}

impl DecodeError {
    /// Stable machine code, the dead letter's `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAttribute(_) => "missing_attribute",
            Self::InvalidAttribute { .. } => "invalid_attribute",
            Self::UnknownEventType(_) => "unknown_event_type",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::InvalidProtobuf(_) => "invalid_protobuf",
        }
    }

    /// Always [`Disposition::Permanent`].
    pub fn disposition(&self) -> Disposition {
        Disposition::Permanent
    }
}

/// Decodes a binary-mode Datastore entity event from its request headers and
/// body.
///
/// # Errors
/// A [`DecodeError`] naming the first problem: attributes are checked before
/// the body, so a request that is no entity event at all says so.
///
/// ```
/// use http::HeaderMap;
/// use prost::Message;
/// use sync_capture::event::{decode, Change};
/// use sync_capture::proto::EntityEventData;
/// let mut headers = HeaderMap::new();
/// headers.insert("ce-specversion", "1.0".parse()?);
/// headers.insert("ce-id", "e-1".parse()?);
/// headers.insert("ce-source", "//firestore.googleapis.com/projects/p/databases/(default)".parse()?);
/// headers.insert("ce-type", "google.cloud.datastore.entity.v1.written".parse()?);
/// headers.insert("content-type", "application/protobuf".parse()?);
/// let event = decode(&headers, &EntityEventData::default().encode_to_vec())?;
/// assert_eq!(event.event_type.change, Change::Written);
/// let mut unknown = headers.clone();
/// unknown.insert("ce-type", "google.cloud.storage.object.v1.finalized".parse()?);
/// assert_eq!(decode(&unknown, &[]).map_err(|e| e.code()), Err("unknown_event_type"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<EntityEvent, DecodeError> {
    let spec_version = required(headers, header::SPEC_VERSION)?;
    if spec_version != SPEC_VERSION {
        return Err(DecodeError::InvalidAttribute {
            name: header::SPEC_VERSION,
            reason: format!("`{}` is not `{SPEC_VERSION}`", clip(&spec_version)),
        });
    }
    let type_name = required(headers, header::TYPE)?;
    let event_type = EventType::parse(&type_name)
        .ok_or_else(|| DecodeError::UnknownEventType(clip(&type_name)))?;
    let id = required(headers, header::ID)?;
    let source = required(headers, header::SOURCE)?;
    if let Some(content_type) = optional(headers, header::CONTENT_TYPE)? {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !essence.eq_ignore_ascii_case(PROTOBUF) {
            return Err(DecodeError::UnsupportedContentType(clip(&content_type)));
        }
    }
    let time = optional(headers, header::TIME)?
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| DecodeError::InvalidAttribute {
                    name: header::TIME,
                    reason: format!("`{}` is not RFC 3339: {e}", clip(&text)),
                })
        })
        .transpose()?;
    let data =
        EntityEventData::decode(body).map_err(|e| DecodeError::InvalidProtobuf(e.to_string()))?;
    Ok(EntityEvent {
        id,
        source,
        event_type,
        time,
        subject: optional(headers, header::SUBJECT)?,
        database: optional(headers, header::DATABASE)?,
        namespace: optional(headers, header::NAMESPACE)?,
        entity: optional(headers, header::ENTITY)?,
        project: optional(headers, header::PROJECT)?,
        location: optional(headers, header::LOCATION)?,
        auth_type: optional(headers, header::AUTH_TYPE)?,
        auth_id: optional(headers, header::AUTH_ID)?,
        data,
    })
}

impl EntityEvent {
    /// The request Eventarc would make for this event: the `ce-*` headers
    /// (values percent-encoded as the binding asks), `Content-Type:
    /// application/protobuf`, and the protobuf body. [`decode`] reads it
    /// back unchanged; tests and the demo deliver events with it, since no
    /// emulator does.
    ///
    /// # Errors
    /// None in practice: percent-encoded values are always valid header
    /// values; the error is `http`'s, should one not be.
    pub fn to_request(&self) -> Result<(HeaderMap, Vec<u8>), http::header::InvalidHeaderValue> {
        let mut headers = HeaderMap::new();
        let time = self
            .time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let attributes = [
            (header::SPEC_VERSION, Some(SPEC_VERSION)),
            (header::ID, Some(self.id.as_str())),
            (header::SOURCE, Some(self.source.as_str())),
            (header::TYPE, Some(self.event_type.as_str())),
            (header::TIME, time.as_deref()),
            (header::SUBJECT, self.subject.as_deref()),
            (header::DATABASE, self.database.as_deref()),
            (header::NAMESPACE, self.namespace.as_deref()),
            (header::ENTITY, self.entity.as_deref()),
            (header::PROJECT, self.project.as_deref()),
            (header::LOCATION, self.location.as_deref()),
            (header::AUTH_TYPE, self.auth_type.as_deref()),
            (header::AUTH_ID, self.auth_id.as_deref()),
            (header::CONTENT_TYPE, Some(PROTOBUF)),
        ];
        for (name, value) in attributes {
            if let Some(value) = value {
                let encoded =
                    percent_encoding::utf8_percent_encode(value, HEADER_ESCAPES).to_string();
                headers.insert(name, http::HeaderValue::try_from(encoded)?);
            }
        }
        Ok((headers, self.data.encode_to_vec()))
    }
}

/// What the CloudEvents HTTP binding percent-encodes in a header value:
/// controls, space, `"` and `%` (and every non-ASCII byte, which the encoder
/// always escapes).
const HEADER_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'%');

/// The decoded value of header `name`, `None` when absent or empty.
fn optional(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, DecodeError> {
    let Some(raw) = headers.get(name) else {
        return Ok(None);
    };
    // The binding percent-encodes everything outside printable ASCII; a
    // sender that put raw UTF-8 in the header anyway is read as UTF-8.
    let invalid = |reason: &str| DecodeError::InvalidAttribute {
        name,
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(raw.as_bytes()).map_err(|_| invalid("not UTF-8"))?;
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| invalid("percent-decodes to bytes that are not UTF-8"))?;
    let value = decoded.trim();
    Ok((!value.is_empty()).then(|| value.to_string()))
}

fn required(headers: &HeaderMap, name: &'static str) -> Result<String, DecodeError> {
    optional(headers, name)?.ok_or(DecodeError::MissingAttribute(name))
}

/// `s` cut to 128 characters for an error message.
fn clip(s: &str) -> String {
    s.chars().take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Entity, EntityResult};
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("test header"));
        }
        map
    }

    fn minimal() -> HeaderMap {
        headers(&[
            (header::SPEC_VERSION, "1.0"),
            (header::ID, "id-1"),
            (
                header::SOURCE,
                "//firestore.googleapis.com/projects/p/databases/(default)",
            ),
            (header::TYPE, "google.cloud.datastore.entity.v1.created"),
        ])
    }

    fn body() -> Vec<u8> {
        EntityEventData {
            value: Some(EntityResult {
                entity: Some(Entity::default()),
                version: 1,
                ..EntityResult::default()
            }),
            ..EntityEventData::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn every_type_name_parses_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                t.as_str().ends_with(".withAuthContext"),
                t.with_auth_context
            );
        }
        let distinct: std::collections::HashSet<_> =
            EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(distinct.len(), 8);
        for other in [
            "google.cloud.datastore.entity.v1.created.withauthcontext",
            "google.cloud.firestore.document.v1.created",
            "google.cloud.datastore.entity.v1",
            "",
        ] {
            assert_eq!(EventType::parse(other), None, "{other}");
        }
    }

    #[test]
    fn minimal_headers_decode_with_optional_attributes_absent() {
        let event = decode(&minimal(), &body()).expect("valid");
        assert_eq!(event.id, "id-1");
        assert_eq!(event.event_type.change, Change::Created);
        assert_eq!(event.time, None);
        assert_eq!(event.database, None);
        assert_eq!(event.data.value.map(|v| v.version), Some(1));
    }

    #[test]
    fn values_are_percent_decoded() {
        let mut h = minimal();
        h.insert(
            header::ENTITY,
            HeaderValue::from_static("Caf%C3%A9/cr%C3%A8me%20br%C3%BBl%C3%A9e"),
        );
        h.insert(header::NAMESPACE, HeaderValue::from_static("(default)"));
        let event = decode(&h, &body()).expect("valid");
        assert_eq!(event.entity.as_deref(), Some("Café/crème brûlée"));
        assert_eq!(event.namespace.as_deref(), Some(DEFAULT_NAME));
    }

    #[test]
    fn time_keeps_its_microseconds() {
        let mut h = minimal();
        h.insert(
            header::TIME,
            HeaderValue::from_static("2024-09-29T10:05:32.318607Z"),
        );
        let event = decode(&h, &body()).expect("valid");
        let time = event.time.expect("time");
        assert_eq!(time.timestamp(), 1_727_604_332);
        assert_eq!(time.timestamp_subsec_micros(), 318_607);
    }

    /// One case per code: the headers changed and the code expected.
    #[test]
    fn every_decode_code() {
        let without = |name: &'static str| {
            let mut h = minimal();
            h.remove(name);
            h
        };
        let with = |name: &'static str, value: &'static [u8]| {
            let mut h = minimal();
            h.insert(name, HeaderValue::from_bytes(value).expect("test header"));
            h
        };
        let cases: Vec<(HeaderMap, Vec<u8>, &str)> = vec![
            (HeaderMap::new(), body(), "missing_attribute"),
            (without(header::ID), body(), "missing_attribute"),
            (without(header::SOURCE), body(), "missing_attribute"),
            (without(header::TYPE), body(), "missing_attribute"),
            (with(header::ID, b" "), body(), "missing_attribute"),
            (
                with(header::SPEC_VERSION, b"0.3"),
                body(),
                "invalid_attribute",
            ),
            (
                with(header::TIME, b"yesterday"),
                body(),
                "invalid_attribute",
            ),
            (with(header::ENTITY, b"%FF%FE"), body(), "invalid_attribute"),
            (with(header::ENTITY, b"\xff"), body(), "invalid_attribute"),
            (
                with(header::TYPE, b"google.cloud.datastore.entity.v1.archived"),
                body(),
                "unknown_event_type",
            ),
            (
                with(header::CONTENT_TYPE, b"application/json"),
                body(),
                "unsupported_content_type",
            ),
            (minimal(), vec![0x0a, 0x05, 0x20], "invalid_protobuf"),
            (minimal(), b"{\"value\":{}}".to_vec(), "invalid_protobuf"),
        ];
        for (i, (h, b, code)) in cases.into_iter().enumerate() {
            let err = decode(&h, &b).expect_err("refused");
            assert_eq!(err.code(), code, "case {i}: {err}");
            assert_eq!(err.disposition(), Disposition::Permanent);
        }
    }

    #[test]
    fn a_request_built_from_an_event_decodes_back_to_it() {
        let mut h = minimal();
        h.insert(
            header::TIME,
            HeaderValue::from_static("2024-09-29T10:05:32.318607Z"),
        );
        let mut event = decode(&h, &body()).expect("valid");
        event.event_type =
            EventType::parse("google.cloud.datastore.entity.v1.written.withAuthContext")
                .expect("a type");
        event.entity = Some("Caf\u{e9}/100% \"pure\"/~1".into());
        event.namespace = Some(DEFAULT_NAME.into());
        event.auth_id = Some("someone@example.com".into());
        let (headers, body) = event.to_request().expect("valid headers");
        assert_eq!(
            headers.get(header::ENTITY).map(HeaderValue::as_bytes),
            Some(&b"Caf%C3%A9/100%25%20%22pure%22/~1"[..])
        );
        assert_eq!(decode(&headers, &body), Ok(event));
    }

    #[test]
    fn content_type_parameters_and_case_are_accepted() {
        let mut h = minimal();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/Protobuf; charset=binary"),
        );
        assert!(decode(&h, &body()).is_ok());
    }
}
