//! The audit function's settings: the HTTP runtime's part (`sync-http`) and
//! its own, read through one lookup function and reported together.
//! `GOOGLE_CLOUD_PROJECT` (`sync_core::env`) is optional here: it only
//! correlates entries with traces. `SCHEMA_HISTORY_FILE` (`sync_core::env`)
//! is the sync function's: events are upcast as it upcasts them.

use sync_core::env::{Problems, Vars, GOOGLE_CLOUD_PROJECT};
use sync_core::SchemaHistory;
use sync_http::RuntimeConfig;
/// Comma-separated field names whose values are replaced in `data_snapshot`.
pub const AUDIT_REDACT_FIELDS: &str = "AUDIT_REDACT_FIELDS";
/// Largest raw payload copied into a malformed-message entry, in bytes.
pub const AUDIT_MAX_RAW_BYTES: &str = "AUDIT_MAX_RAW_BYTES";
/// The most `AUDIT_MAX_RAW_BYTES` may be: a payload escaped into JSON can
/// take up to 6 bytes per byte, and the entry has to fit one log line
/// (`sync_core::logline::LINE_BUDGET_BYTES`) beside the message's attributes.
pub const MAX_RAW_BYTES_LIMIT: usize = 16_384;
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
    /// `AUDIT_MAX_RAW_BYTES`, default 8192, at most [`MAX_RAW_BYTES_LIMIT`].
    pub max_raw_bytes: usize,
    /// `AUDIT_FUNCTION_NAME`, default `audit_logger`.
    pub function_name: String,
    /// `SCHEMA_HISTORY_FILE`, default version 1 only.
    pub schema: SchemaHistory,
}

impl AuditConfig {
    /// Reads every setting through `lookup`, and the schema history file
    /// from the file system.
    ///
    /// # Errors
    /// Every unusable variable, naming it and the form expected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        Self::from_sources(lookup, |p: &str| std::fs::read_to_string(p))
    }

    /// Reads every setting through `lookup`, and files through `read_file`.
    ///
    /// # Errors
    /// As [`from_lookup`](Self::from_lookup).
    pub fn from_sources(
        lookup: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, Problems> {
        sync_core::env::read(lookup, |vars, problems| {
            Self::from_vars(vars, problems, read_file)
        })
    }

    fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        problems: &mut Problems,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Self {
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
                vars.parse_where(
                    AUDIT_MAX_RAW_BYTES,
                    "a number of bytes up to 16384 (an entry fits one log line)",
                    |n: &usize| *n <= MAX_RAW_BYTES_LIMIT,
                )
                .map(|n| n.unwrap_or(8192)),
                8192,
            ),
            function_name: vars
                .get(AUDIT_FUNCTION_NAME)
                .unwrap_or_else(|| "audit_logger".into()),
            schema: SchemaHistory::configured(vars, problems, read_file),
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
        for value in ["lots", "16385"] {
            let bad = HashMap::from([(AUDIT_MAX_RAW_BYTES, value)]);
            let err = AuditConfig::from_lookup(|k| bad.get(k).map(|v| v.to_string()))
                .expect_err("invalid");
            assert!(err.to_string().contains(AUDIT_MAX_RAW_BYTES), "{err}");
        }
        let most = HashMap::from([(AUDIT_MAX_RAW_BYTES, "16384")]);
        let c = AuditConfig::from_lookup(|k| most.get(k).map(|v| v.to_string()))?;
        assert_eq!(c.max_raw_bytes, MAX_RAW_BYTES_LIMIT);
        let both = HashMap::from([(AUDIT_MAX_RAW_BYTES, "lots"), ("PORT", "http")]);
        let err =
            AuditConfig::from_lookup(|k| both.get(k).map(|v| v.to_string())).expect_err("invalid");
        assert_eq!(err.len(), 2, "{err}");
        Ok(())
    }

    #[test]
    fn the_schema_history_is_read_and_its_problems_listed_with_the_others() -> Result<(), Problems>
    {
        use sync_core::env::SCHEMA_HISTORY_FILE;
        let files = |p: &str| match p {
            "h.toml" => Ok("current = 2\n[[upcast]]\nfrom = 1\nrename = { a = \"b\" }\n".into()),
            "bad.toml" => Ok("current = 3\n[[upcast]]\nfrom = 1\n".into()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file",
            )),
        };
        let good = HashMap::from([(SCHEMA_HISTORY_FILE, "h.toml")]);
        let c = AuditConfig::from_sources(|k| good.get(k).map(|v| v.to_string()), files)?;
        assert_eq!(c.schema.current(), 2);
        assert_eq!(
            AuditConfig::from_lookup(|_| None)?.schema,
            SchemaHistory::default()
        );
        for (path, needle) in [
            ("bad.toml", "no step from version 2"),
            ("gone.toml", "cannot be read"),
        ] {
            let bad = HashMap::from([(SCHEMA_HISTORY_FILE, path), (AUDIT_MAX_RAW_BYTES, "lots")]);
            let err = AuditConfig::from_sources(|k| bad.get(k).map(|v| v.to_string()), files)
                .expect_err("invalid");
            let text = err.to_string();
            assert_eq!(err.len(), 2, "{text}");
            assert!(
                text.contains(SCHEMA_HISTORY_FILE) && text.contains(needle),
                "{text}"
            );
        }
        Ok(())
    }
}
