//! What an event does to its entity: the `operation` field's three values.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What an event does to its entity.
///
/// Serde reads and writes it by its wire name ([`Operation::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Operation {
    /// Set fields; the entity exists afterwards.
    Create,
    /// Set fields; the entity exists afterwards (same merge as create).
    Update,
    /// Remove every field older than the delete.
    Delete,
}

impl Operation {
    /// The three operations.
    pub const ALL: [Self; 3] = [Self::Create, Self::Update, Self::Delete];

    /// The wire name: `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`ValidationError::InvalidOperation`] for anything but the three names.
    ///
    /// ```
    /// use sync_core::Operation;
    /// assert_eq!(Operation::parse("delete")?, Operation::Delete);
    /// # Ok::<(), sync_core::ValidationError>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| ValidationError::InvalidOperation(s.chars().take(64).collect()))
    }
}

impl TryFrom<String> for Operation {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Operation> for &'static str {
    fn from(op: Operation) -> Self {
        op.as_str()
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
