//! Merge policy: which rule decides each field, loaded from JSON or TOML.
//!
//! Every rule is a *rank* on a field's candidate writes, and the merge keeps
//! the candidates nothing beats on both recency and rank, a set that does not
//! depend on the order the events came in: `lww` ranks by order key, `max` and
//! `min` by value, `priority` by the source's place in `source_priority`, and
//! `union` treats the field as a sorted set.

use crate::file_format::Format;
use crate::value::RESERVED_FIELDS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// How one field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldRule {
    /// Last writer wins, by order key.
    #[default]
    Lww,
    /// The largest value wins.
    Max,
    /// The smallest value wins.
    Min,
    /// Arrays merge as sets.
    Union,
    /// The highest-priority source wins; the order key breaks ties.
    Priority,
}

impl FieldRule {
    /// The configuration name of the rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lww => "lww",
            Self::Max => "max",
            Self::Min => "min",
            Self::Union => "union",
            Self::Priority => "priority",
        }
    }
}

/// A configured merge policy.
///
/// ```
/// use sync_core::{FieldRule, MergePolicy};
/// let policy = MergePolicy::from_toml(r#"
///     default = "lww"
///     source_priority = ["crm", "web"]
///     [fields]
///     stock = "min"
///     tags = "union"
///     owner = "priority"
/// "#)?;
/// assert_eq!(policy.rule_for("stock"), FieldRule::Min);
/// assert_eq!(policy.rule_for("name"), FieldRule::Lww);
/// assert!(MergePolicy::from_json(r#"{"fields":{"x":"newest"}}"#).is_err());
/// # Ok::<(), sync_core::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergePolicy {
    /// Rule for fields not listed in `fields`.
    #[serde(default)]
    pub default: FieldRule,
    /// Per-field rules, by top-level field name.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
    /// Sources in decreasing priority, for the `priority` rule.
    #[serde(default)]
    pub source_priority: Vec<String>,
}

/// Why a policy file was refused.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The text is not valid JSON / TOML for a policy (unknown rule names land here).
    #[error("merge policy is not valid {format}: {message}")]
    Parse {
        /// `JSON` or `TOML`.
        format: &'static str,
        /// The parser's explanation (names the unknown rule and the valid ones).
        message: String,
    },
    /// The policy parses but cannot be used.
    #[error("merge policy is inconsistent: {0}")]
    Invalid(String),
    /// The file name says neither JSON nor TOML.
    #[error("merge policy file `{0}` must end in .json or .toml")]
    UnknownFormat(String),
}

impl MergePolicy {
    /// Parses a JSON policy.
    ///
    /// # Errors
    /// [`PolicyError`] for bad syntax, unknown rules or inconsistencies.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Self::parse(Format::Json, text)
    }

    /// Parses a TOML policy.
    ///
    /// # Errors
    /// [`PolicyError`] for bad syntax, unknown rules or inconsistencies.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        Self::parse(Format::Toml, text)
    }

    /// Parses a policy file's contents, choosing the format by the file name.
    ///
    /// # Errors
    /// [`PolicyError::UnknownFormat`] for other extensions, else as the parsers.
    pub fn from_file_contents(file_name: &str, text: &str) -> Result<Self, PolicyError> {
        let format =
            Format::of(file_name).ok_or_else(|| PolicyError::UnknownFormat(file_name.into()))?;
        Self::parse(format, text)
    }

    fn parse(format: Format, text: &str) -> Result<Self, PolicyError> {
        let policy: Self = format.parse(text).map_err(|message| PolicyError::Parse {
            format: format.name(),
            message,
        })?;
        policy.validated()
    }

    fn validated(self) -> Result<Self, PolicyError> {
        for name in self.fields.keys() {
            if RESERVED_FIELDS.contains(&name.as_str()) {
                return Err(PolicyError::Invalid(format!(
                    "`{name}` is a reserved field and cannot have a rule"
                )));
            }
        }
        let uses_priority = self.default == FieldRule::Priority
            || self.fields.values().any(|r| *r == FieldRule::Priority);
        if uses_priority && self.source_priority.is_empty() {
            return Err(PolicyError::Invalid(
                "the `priority` rule needs a non-empty `source_priority` list".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.source_priority {
            if !seen.insert(s) {
                return Err(PolicyError::Invalid(format!(
                    "source `{s}` appears twice in `source_priority`"
                )));
            }
        }
        Ok(self)
    }

    /// The rule that decides `field`.
    pub fn rule_for(&self, field: &str) -> FieldRule {
        self.fields.get(field).copied().unwrap_or(self.default)
    }

    /// Priority of a source: larger wins; unlisted sources get 0.
    pub fn source_rank(&self, source: &str) -> usize {
        self.source_priority
            .iter()
            .position(|s| s == source)
            .map_or(0, |i| self.source_priority.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_agree() {
        let j = MergePolicy::from_json(
            r#"{"default":"lww","fields":{"a":"max","b":"union"},"source_priority":["x"]}"#,
        )
        .expect("json");
        let t = MergePolicy::from_toml(
            "default = \"lww\"\nsource_priority = [\"x\"]\n[fields]\na = \"max\"\nb = \"union\"\n",
        )
        .expect("toml");
        assert_eq!(j, t);
    }

    #[test]
    fn unknown_rule_names_the_valid_ones() {
        let err =
            MergePolicy::from_json(r#"{"fields":{"a":"largest"}}"#).expect_err("unknown rule");
        let text = err.to_string();
        assert!(text.contains("largest") && text.contains("max"), "{text}");
        let err = MergePolicy::from_toml("[fields]\na = \"largest\"\n").expect_err("unknown rule");
        assert!(err.to_string().contains("largest"));
    }

    #[test]
    fn inconsistent_policies_are_refused() {
        assert!(MergePolicy::from_json(r#"{"fields":{"a":"priority"}}"#).is_err());
        assert!(MergePolicy::from_json(r#"{"fields":{"version":"max"}}"#).is_err());
        assert!(MergePolicy::from_json(r#"{"source_priority":["a","a"]}"#).is_err());
        assert!(MergePolicy::from_json(r#"{"rules":{}}"#).is_err());
        assert!(MergePolicy::from_file_contents("p.yaml", "").is_err());
    }

    #[test]
    fn source_rank_orders_listed_sources_first() {
        let p = MergePolicy::from_json(r#"{"source_priority":["crm","web"]}"#).expect("policy");
        assert!(p.source_rank("crm") > p.source_rank("web"));
        assert!(p.source_rank("web") > p.source_rank("batch"));
    }
}
