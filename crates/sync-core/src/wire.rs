//! Wire contracts shared by the functions, `syncctl`, the tests and the
//! deploy scripts, each defined here once, as serde types that both write and
//! read them or as named constants:
//!
//! - the messages: [`EventMessage`] (what a publisher sends; [`event::field`]
//!   names its fields), [`AnnouncementMessage`] (what the sync function
//!   publishes downstream) and the audit function's entries ([`audit`]);
//! - their vocabulary: the [`Operation`] and the timestamp forms
//!   ([`timestamp`]);
//! - Pub/Sub's attribute limits ([`pubsub`]), the dead-letter attributes
//!   ([`dead_letter`]) and the trace context a message carries ([`trace`]);
//! - the topology's names and their suffix rule ([`topology`]), which
//!   `deploy/lib.sh` spells in shell (a test in `syncctl` checks the two agree).
//!
//! Nothing here knows the domain: the layers above build these types.

pub mod announcement;
pub mod audit;
pub mod dead_letter;
pub mod event;
mod json;
pub mod operation;
pub mod pubsub;
pub mod timestamp;
pub mod topology;
pub mod trace;

pub use announcement::AnnouncementMessage;
pub use event::EventMessage;
pub use operation::Operation;
pub use pubsub::{attribute_safe, MAX_ATTRIBUTES, MAX_ATTRIBUTE_VALUE_BYTES};
pub use timestamp::{format_timestamp, parse_timestamp};
pub use topology::SYSTEM;
