//! The audit function's settings: the HTTP runtime's part (`sync-http`) and
//! its own, read through one lookup function and reported together.
//! `GOOGLE_CLOUD_PROJECT` is optional here: it only correlates entries with
//! traces. `SCHEMA_HISTORY_FILE` is the sync function's too: events are
//! upcast as it upcasts them.

use serde::Deserialize;
use sync_config::{Problems, Reader, Var, GOOGLE_CLOUD_PROJECT, SCHEMA_HISTORY_FILE};
use sync_config::{AUDIT_FUNCTION_NAME, AUDIT_MAX_RAW_BYTES, AUDIT_REDACT_FIELDS};
use sync_core::SchemaHistory;
use sync_http::RuntimeConfig;

/// The most `AUDIT_MAX_RAW_BYTES` may be: a payload escaped into JSON can
/// take up to 6 bytes per byte, and the entry has to fit one log line
/// (`sync_core::logline::LINE_BUDGET_BYTES`) beside the message's attributes.
pub const MAX_RAW_BYTES_LIMIT: usize = 16_384;

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

/// The function's own variables, one field each (see [`AuditConfig::VARS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
struct Settings {
    google_cloud_project: Option<String>,
    audit_redact_fields: Option<String>,
    audit_max_raw_bytes: Option<usize>,
    audit_function_name: Option<String>,
}

impl AuditConfig {
    /// The function's own variables, and the form each takes; besides them
    /// it reads [`RuntimeConfig::VARS`] and `SCHEMA_HISTORY_FILE`.
    pub const VARS: &[Var] = &[
        Var::new(GOOGLE_CLOUD_PROJECT, "a Google Cloud project id"),
        Var::new(AUDIT_REDACT_FIELDS, "field names separated by commas"),
        Var::new(
            AUDIT_MAX_RAW_BYTES,
            "a number of bytes up to 16384 (an entry fits one log line)",
        ),
        Var::new(AUDIT_FUNCTION_NAME, "a name"),
    ];

    /// Every variable the audit function reads.
    pub fn variables() -> impl Iterator<Item = &'static str> {
        [Self::VARS, RuntimeConfig::VARS]
            .into_iter()
            .flatten()
            .map(|v| v.name)
            .chain([SCHEMA_HISTORY_FILE])
            .chain(RuntimeConfig::PROCESS_VARS.iter().copied())
    }

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
        let mut reader = Reader::new(&lookup, &read_file);
        let own: Settings = reader.read(Self::VARS);
        let max_raw_bytes = match own.audit_max_raw_bytes {
            Some(n) if n > MAX_RAW_BYTES_LIMIT => {
                reader.invalid(AUDIT_MAX_RAW_BYTES);
                8192
            }
            n => n.unwrap_or(8192),
        };
        let config = Self {
            runtime: RuntimeConfig::read(&mut reader),
            project_id: own.google_cloud_project,
            redact_fields: own
                .audit_redact_fields
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            max_raw_bytes,
            function_name: own
                .audit_function_name
                .unwrap_or_else(|| "audit_logger".into()),
            schema: sync_http::config::schema_history(&mut reader),
        };
        reader.finish(config)
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
