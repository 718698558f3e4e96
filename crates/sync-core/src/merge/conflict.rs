//! A write that lost: which rule decided, why, and both sides.

use super::order::OrderKey;
use super::policy::FieldRule;
use serde_json::Value;

/// Why a write lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// `lww`: a newer write holds the field.
    OlderThanWinner,
    /// `max`: a larger value holds the field.
    SmallerValue,
    /// `min`: a smaller value holds the field.
    LargerValue,
    /// `priority`: a higher-priority (or equal-priority, newer) source holds it.
    LowerPriority,
    /// The entity was deleted after this write.
    DeletedLater,
    /// The field was removed (an update's `removed`) after this write.
    RemovedLater,
}

impl LossReason {
    /// Stable name for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OlderThanWinner => "older_than_winner",
            Self::SmallerValue => "smaller_value",
            Self::LargerValue => "larger_value",
            Self::LowerPriority => "lower_priority",
            Self::DeletedLater => "deleted_later",
            Self::RemovedLater => "removed_later",
        }
    }
}

/// One field of an event that did not become visible.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// The rule that decided.
    pub rule: FieldRule,
    /// Why the incoming write lost.
    pub reason: LossReason,
    /// The value that stayed visible (`None` when the entity was deleted or
    /// the field removed after the write).
    pub winner_value: Option<Value>,
    /// Order key of the value that stayed (or of the delete or removal).
    pub winner_key: OrderKey,
    /// The incoming value that lost.
    pub loser_value: Value,
    /// Order key of the incoming write.
    pub loser_key: OrderKey,
}
