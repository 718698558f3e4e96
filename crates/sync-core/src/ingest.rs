//! From message data to a validated [`ChangeEvent`]: everything that happens
//! to an event before it is merged.
//!
//! - [`schema`]: an event of an older `schema_version` is upcast to the
//!   current one, by a history declared in a file;
//! - [`limits`]: Datastore's production limits (size, depth, index entries,
//!   key size), checked before anything is written;
//! - [`change`]: the event parsed, upcast and validated; every refusal is a
//!   [`ValidationError`](crate::ValidationError) with a stable code.

pub mod change;
pub mod limits;
pub mod schema;

pub use change::{parse_event, parse_event_with, ChangeEvent, EntityId};
pub use limits::ValidationLimits;
pub use schema::{SchemaError, SchemaHistory, Upcast};
