//! The convergent merge: one validated event into one entity's state.
//!
//! Each field keeps the candidate writes that no other candidate beats on
//! both recency (the [`OrderKey`]) and rank (the field's rule, see
//! [`policy`]); the visible value is the candidate of highest rank. A delete
//! drops every candidate older than itself and keeps a tombstone, so a late,
//! older write cannot resurrect the entity. A removal (a field an update
//! lists in `removed`) is the same for one field: it drops the field's
//! candidates older than itself and keeps the field's removal key, so a late,
//! older write of the field is refused; a field left without candidates is
//! gone. A field's candidates are therefore the undominated writes newer than
//! both the newest delete and the field's newest removal. These steps depend
//! only on the set of events seen, so any order and any repetition of the
//! same events give the same state; `version` counts the effective changes
//! this store saw.
//!
//! From the bottom up: [`order`], [`policy`], the [`conflict`] a losing write
//! reports, the private `rank` (which candidate wins), the [`announcement`]
//! owed downstream, the [`state`] of one entity and its [`stored`] form, the
//! [`outcome`] of one merge, and [`apply`], the merge itself.

pub mod announcement;
pub mod apply;
pub mod conflict;
pub mod order;
pub mod outcome;
pub mod policy;
mod rank;
pub mod state;
pub mod stored;

pub use announcement::Announcement;
pub use apply::{merge, merge_group, merge_group_checked};
pub use conflict::{FieldConflict, LossReason};
pub use order::OrderKey;
pub use outcome::{MergeOutcome, Outcome};
pub use policy::{FieldRule, MergePolicy, PolicyError};
pub use rank::Candidate;
pub use state::{EntityState, FieldState};
pub use stored::{StateError, StoredEntity};
