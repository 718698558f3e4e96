//! Runtime settings both functions share: the HTTP part of each function's
//! configuration (port, body limit, log format, the instance's memory limit),
//! read through `sync_core::env` so tests pass a map instead of touching the
//! process environment.

use crate::delivery::DEFAULT_MAX_BODY_BYTES;
use crate::telemetry::LogFormat;
use sync_core::env::{Problems, Vars};

/// Port to listen on (Cloud Run sets it).
pub const PORT: &str = "PORT";
/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// `json` (Cloud Logging, the default) or `text` (readable, for local runs).
pub const LOG_FORMAT: &str = "LOG_FORMAT";
/// The instance's memory limit in MiB, overriding the one read from the
/// process's cgroup (the deploy scripts set it to the service's `--memory`).
pub const MEMORY_LIMIT_MIB: &str = "MEMORY_LIMIT_MIB";

/// Default `PORT`.
pub const DEFAULT_PORT: u16 = 8080;

/// The largest `MEMORY_LIMIT_MIB` taken: Cloud Run's largest instance has 32 GiB.
pub const MAX_MEMORY_LIMIT_MIB: u64 = 32 * 1024;

/// Settings of the HTTP runtime: port, body limit, log format, memory limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `PORT`, default 8080. 0 binds a free port (tests).
    pub port: u16,
    /// `MAX_BODY_BYTES`, default 16 MiB.
    pub max_body_bytes: usize,
    /// `LOG_FORMAT`, default `json`.
    pub log_format: LogFormat,
    /// `MEMORY_LIMIT_MIB`, default unset: the cgroup's limit is read instead
    /// (see [`memory_limit`](Self::memory_limit), in [`crate::cgroup`]).
    pub memory_limit_mib: Option<u64>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            log_format: LogFormat::Json,
            memory_limit_mib: None,
        }
    }
}

impl RuntimeConfig {
    /// Reads `PORT`, `MAX_BODY_BYTES`, `LOG_FORMAT` and `MEMORY_LIMIT_MIB`;
    /// each unusable value is noted in `problems` (naming the variable and
    /// the form expected) and its default kept.
    pub fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        problems: &mut Problems,
    ) -> Self {
        let d = Self::default();
        Self {
            port: problems.or(
                vars.parse_or(PORT, d.port, "a TCP port number, 0-65535"),
                d.port,
            ),
            max_body_bytes: problems
                .or(
                    vars.parse_where(
                        MAX_BODY_BYTES,
                        "a positive number of bytes (default 16777216)",
                        |n: &usize| *n > 0,
                    ),
                    None,
                )
                .unwrap_or(d.max_body_bytes),
            log_format: problems.or(
                vars.parse_or(LOG_FORMAT, d.log_format, "`json` or `text`"),
                d.log_format,
            ),
            memory_limit_mib: problems.or(
                vars.parse_where(
                    MEMORY_LIMIT_MIB,
                    "a whole number of MiB, 1-32768 (the service's --memory; unset: the cgroup's limit)",
                    |n: &u64| (1..=MAX_MEMORY_LIMIT_MIB).contains(n),
                ),
                None,
            ),
        }
    }

    /// [`from_vars`](Self::from_vars) on its own.
    ///
    /// # Errors
    /// Every unusable variable, one a line.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        sync_core::env::read(lookup, Self::from_vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<RuntimeConfig, Problems> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RuntimeConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() -> Result<(), Problems> {
        assert_eq!(config(&[])?, RuntimeConfig::default());
        let d = RuntimeConfig::default();
        assert_eq!(d.port, 8080);
        assert_eq!(d.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(d.log_format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn reads_every_variable() -> Result<(), Problems> {
        let c = config(&[
            ("PORT", "9090"),
            ("MAX_BODY_BYTES", " 1024 "),
            ("LOG_FORMAT", "TEXT"),
            ("MEMORY_LIMIT_MIB", "512"),
        ])?;
        assert_eq!(c.port, 9090);
        assert_eq!(c.max_body_bytes, 1024);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.memory_limit_mib, Some(512));
        assert_eq!(
            c.memory_limit().map(|l| (l.bytes, l.source)),
            Some((512 << 20, crate::cgroup::LimitSource::Setting))
        );
        Ok(())
    }

    #[test]
    fn empty_values_count_as_unset() -> Result<(), Problems> {
        assert_eq!(
            config(&[("PORT", ""), ("LOG_FORMAT", "  ")])?,
            RuntimeConfig::default()
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_variable_and_the_expected_form() {
        let e = config(&[("PORT", "eighty")]).expect_err("not a port");
        assert_eq!(
            e.to_string(),
            "PORT=\"eighty\" is invalid: expected a TCP port number, 0-65535"
        );
        let e = config(&[("PORT", "70000")]).expect_err("out of range");
        assert!(e.to_string().starts_with("PORT="), "{e}");
        let e = config(&[("MAX_BODY_BYTES", "0")]).expect_err("zero");
        assert!(e.to_string().starts_with("MAX_BODY_BYTES="), "{e}");
        let e = config(&[("MAX_BODY_BYTES", "16MiB")]).expect_err("no units");
        assert!(e.to_string().contains("positive number of bytes"), "{e}");
        for bad in ["0", "256Mi", "-1", "40000"] {
            let e = config(&[("MEMORY_LIMIT_MIB", bad)]).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("MEMORY_LIMIT_MIB=\"{bad}\" is invalid: expected a whole number of MiB, 1-32768 (the service's --memory; unset: the cgroup's limit)")
            );
        }
        let e = config(&[("LOG_FORMAT", "yaml")]).expect_err("unknown format");
        assert_eq!(
            e.to_string(),
            "LOG_FORMAT=\"yaml\" is invalid: expected `json` or `text`"
        );
    }

    #[test]
    fn every_bad_variable_is_reported() {
        let e = config(&[
            ("PORT", "http"),
            ("MAX_BODY_BYTES", "0"),
            ("LOG_FORMAT", "xml"),
            ("MEMORY_LIMIT_MIB", "lots"),
        ])
        .expect_err("four problems");
        assert_eq!(e.len(), 4, "{e}");
    }
}
