//! The audit function's settings: the HTTP runtime's part (`sync-http`) and
//! its own, read through one lookup function and reported together.
//! `GOOGLE_CLOUD_PROJECT` (`sync_core::env`) is optional here: it only
//! correlates entries with traces.

use sync_core::env::{Problems, Vars, GOOGLE_CLOUD_PROJECT};
use sync_http::RuntimeConfig;
/// Comma-separated field names whose values are replaced in `data_snapshot`.
pub const AUDIT_REDACT_FIELDS: &str = "AUDIT_REDACT_FIELDS";
/// Largest raw payload copied into a malformed-message entry, in bytes.
pub const AUDIT_MAX_RAW_BYTES: &str = "AUDIT_MAX_RAW_BYTES";
/// `processing_metadata.function_name` (the recipe's is `audit_logger`).
pub const AUDIT_FUNCTION_NAME: &str = "AUDIT_FUNCTION_NAME";

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Port, body limit, log format.
    pub runtime: RuntimeConfig,
    /// `GOOGLE_CLOUD_PROJECT`.
    pub project_id: Option<String>,
    /// `AUDIT_REDACT_FIELDS`.
    pub redact_fields: Vec<String>,
    /// `AUDIT_MAX_RAW_BYTES`, default 8192.
    pub max_raw_bytes: usize,
    /// `AUDIT_FUNCTION_NAME`, default `audit_logger`.
    pub function_name: String,
}

impl AuditConfig {
    /// Reads every setting through `lookup`.
    ///
    /// # Errors
    /// Every unusable variable, naming it and the form expected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        sync_core::env::read(lookup, Self::from_vars)
    }

    fn from_vars<F: Fn(&str) -> Option<String>>(vars: &Vars<F>, problems: &mut Problems) -> Self {
        Self {
            runtime: RuntimeConfig::from_vars(vars, problems),
            project_id: vars.get(GOOGLE_CLOUD_PROJECT),
            redact_fields: vars
                .get(AUDIT_REDACT_FIELDS)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            max_raw_bytes: problems.or(
                vars.parse_or(AUDIT_MAX_RAW_BYTES, 8192, "a number of bytes"),
                8192,
            ),
            function_name: vars
                .get(AUDIT_FUNCTION_NAME)
                .unwrap_or_else(|| "audit_logger".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_overrides() -> Result<(), Problems> {
        let empty = AuditConfig::from_lookup(|_| None)?;
        assert_eq!(empty.function_name, "audit_logger");
        assert!(empty.redact_fields.is_empty());
        assert_eq!(empty.max_raw_bytes, 8192);
        let map = HashMap::from([
            (AUDIT_REDACT_FIELDS, " email, phone ,"),
            (AUDIT_MAX_RAW_BYTES, "10"),
            (GOOGLE_CLOUD_PROJECT, "p"),
        ]);
        let c = AuditConfig::from_lookup(|k| map.get(k).map(|v| v.to_string()))?;
        assert_eq!(c.redact_fields, vec!["email", "phone"]);
        assert_eq!(c.max_raw_bytes, 10);
        assert_eq!(c.project_id.as_deref(), Some("p"));
        let bad = HashMap::from([(AUDIT_MAX_RAW_BYTES, "lots")]);
        let err =
            AuditConfig::from_lookup(|k| bad.get(k).map(|v| v.to_string())).expect_err("invalid");
        assert!(err.to_string().contains(AUDIT_MAX_RAW_BYTES));
        let both = HashMap::from([(AUDIT_MAX_RAW_BYTES, "lots"), ("PORT", "http")]);
        let err =
            AuditConfig::from_lookup(|k| both.get(k).map(|v| v.to_string())).expect_err("invalid");
        assert_eq!(err.len(), 2, "{err}");
        Ok(())
    }
}
