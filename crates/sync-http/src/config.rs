//! Settings both functions share: the HTTP runtime (port, body limit, log
//! format, the instance's memory limit) and the schema history, read through
//! a [`sync_config::Reader`].

use crate::delivery::DEFAULT_MAX_BODY_BYTES;
use crate::telemetry::LogFormat;
use serde::Deserialize;
use sync_config::{Reader, Var, LOG_FORMAT, MAX_BODY_BYTES, MEMORY_LIMIT_MIB, PORT};
use sync_config::{SCHEMA_HISTORY_FILE, SYNC_ALLOCATOR_REEXECUTED};
use sync_core::SchemaHistory;

/// Default `PORT`.
pub const DEFAULT_PORT: u16 = 8080;

/// The largest `MEMORY_LIMIT_MIB` taken: Cloud Run's largest instance has 32 GiB.
pub const MAX_MEMORY_LIMIT_MIB: u64 = 32 * 1024;

/// Settings of the HTTP runtime, one field per variable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// The variables read, and the form each takes.
    pub const VARS: &[Var] = &[
        Var::new(PORT, "a TCP port number, 0-65535"),
        Var::new(
            MAX_BODY_BYTES,
            "a positive number of bytes (default 16777216)",
        ),
        Var::new(LOG_FORMAT, "`json` or `text`"),
        Var::new(
            MEMORY_LIMIT_MIB,
            "a whole number of MiB, 1-32768 (the service's --memory; unset: the cgroup's limit)",
        ),
    ];

    /// Variables the functions read outside any settings struct: the log
    /// filter (`sync_http::telemetry`) and glibc's tunables
    /// (`sync_http::allocator`).
    pub const PROCESS_VARS: &[&str] = &[
        sync_config::RUST_LOG,
        sync_config::GLIBC_TUNABLES,
        SYNC_ALLOCATOR_REEXECUTED,
    ];

    /// Reads [`VARS`](Self::VARS); each unusable value is noted and its
    /// default kept.
    pub fn read(reader: &mut Reader) -> Self {
        let mut config: Self = reader.read(Self::VARS);
        if config.max_body_bytes == 0 {
            reader.invalid(MAX_BODY_BYTES);
            config.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
        }
        if config
            .memory_limit_mib
            .is_some_and(|mib| !(1..=MAX_MEMORY_LIMIT_MIB).contains(&mib))
        {
            reader.invalid(MEMORY_LIMIT_MIB);
            config.memory_limit_mib = None;
        }
        config
    }
}

/// The schema history [`SCHEMA_HISTORY_FILE`] names, which both functions
/// read, or the default (version 1 only) when it is unset. Every problem
/// with the file is noted, each naming the variable and the path.
pub fn schema_history(reader: &mut Reader) -> SchemaHistory {
    let Some((path, text)) = reader.file(SCHEMA_HISTORY_FILE) else {
        return SchemaHistory::default();
    };
    SchemaHistory::from_file_contents(&path, &text).unwrap_or_else(|e| {
        for p in e.problems() {
            reader.push(format!("{SCHEMA_HISTORY_FILE}={path:?}: {p}"));
        }
        SchemaHistory::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_config::Problems;

    fn config(pairs: &[(&str, &str)]) -> Result<RuntimeConfig, Problems> {
        sync_config::read_pairs(pairs, RuntimeConfig::read)
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
