//! What merging one event did: the [`Outcome`], the state after it, the
//! conflicts and the announcement owed ([`MergeOutcome`]).

use super::announcement::Announcement;
use super::conflict::FieldConflict;
use super::policy::MergePolicy;
use super::state::EntityState;
use crate::ingest::change::ChangeEvent;

/// What an event did to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A reader sees a difference: written, `version` + 1, announced.
    Applied,
    /// Only bookkeeping moved (newer keys, same values): written, not announced.
    Refreshed,
    /// Already merged (a redelivery): nothing to write.
    Duplicate,
    /// Entirely beaten by what is stored: nothing to write.
    Stale,
}

impl Outcome {
    /// Whether the new state must be written.
    pub fn needs_write(self) -> bool {
        matches!(self, Self::Applied | Self::Refreshed)
    }

    /// Lower-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Refreshed => "refreshed",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
        }
    }
}

/// The result of merging one event into its entity: what [`merge`](super::merge) returns
/// and what [`crate::EntityStore::apply`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// What happened.
    pub outcome: Outcome,
    /// The state after the event (equal to the input unless `needs_write`).
    pub state: EntityState,
    /// Fields of the event that lost, with both sides.
    pub conflicts: Vec<FieldConflict>,
    /// What to announce downstream.
    ///
    /// An effective change announces the new version. A redelivery of the
    /// event behind the current version announces it again: the earlier
    /// attempt may have written the change and then failed (or crashed) before
    /// announcing, and nothing records whether it did, so announcements are at
    /// least once, and downstream keeps the highest `version` per entity. Any
    /// other event announces nothing: if the event behind the current version
    /// was never announced, its own redelivery will announce it.
    pub announcement: Option<Announcement>,
    /// Transactions the store ran to reach this merge: 1 for [`merge`](super::merge) itself
    /// and a store that did not retry, more after contention or an outage.
    pub attempts: u32,
}

impl MergeOutcome {
    pub(super) fn new(outcome: Outcome, state: EntityState, conflicts: Vec<FieldConflict>) -> Self {
        Self {
            outcome,
            state,
            conflicts,
            announcement: None,
            attempts: 1,
        }
    }

    /// The entity's version after the event.
    pub fn version(&self) -> i64 {
        self.state.version()
    }

    /// Fills in [`Self::announcement`] for `event` (see there).
    pub(super) fn announcing(mut self, event: &ChangeEvent, policy: &MergePolicy) -> Self {
        let owed = match self.outcome {
            Outcome::Applied => true,
            Outcome::Refreshed => false,
            Outcome::Duplicate | Outcome::Stale => {
                self.state.changed_by() == Some(&event.order_key())
            }
        };
        if owed {
            self.announcement = self.state.announcement(policy);
        }
        self
    }
}
