//! Runtime settings both functions share, read through a lookup function so
//! tests pass a map instead of touching the process environment.

use crate::delivery::DEFAULT_MAX_BODY_BYTES;
use crate::telemetry::LogFormat;
use std::str::FromStr;
use thiserror::Error;

/// Port to listen on (Cloud Run sets it).
pub const PORT: &str = "PORT";
/// Largest accepted request body, in bytes.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
/// `json` (Cloud Logging, the default) or `text` (readable, for local runs).
pub const LOG_FORMAT: &str = "LOG_FORMAT";

/// Default `PORT`.
pub const DEFAULT_PORT: u16 = 8080;

/// A setting that is present but unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The value does not have the expected form.
    #[error("{variable}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// The value found.
        value: String,
        /// What would have been accepted, in words.
        expected: &'static str,
    },
    /// A required variable is absent or empty.
    #[error("{variable} is not set: expected {expected}")]
    Missing {
        /// The variable.
        variable: &'static str,
        /// What would have been accepted, in words.
        expected: &'static str,
    },
}

/// Reads settings through a lookup function (`|k| std::env::var(k).ok()` in
/// production, a map in tests). Values are trimmed; an empty value counts as unset.
///
/// ```
/// use std::collections::HashMap;
/// use sync_http::config::Vars;
///
/// let map = HashMap::from([("RETRIES", "3")]);
/// let vars = Vars::new(|k: &str| map.get(k).map(|v| v.to_string()));
/// let retries: u32 = vars.parse_or("RETRIES", 5, "a whole number")?;
/// assert_eq!(retries, 3);
/// # Ok::<(), sync_http::config::ConfigError>(())
/// ```
pub struct Vars<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// Wraps a lookup function.
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`, or `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, which must be set.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when unset or empty.
    pub fn required(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing {
            variable: name,
            expected,
        })
    }

    /// `name` parsed as `T`, or `None` when unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when set but unparseable.
    pub fn parse_opt<T: FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|value| {
                value.parse().map_err(|_| ConfigError::Invalid {
                    variable: name,
                    value,
                    expected,
                })
            })
            .transpose()
    }

    /// `name` parsed as `T`, or `default` when unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when set but unparseable.
    pub fn parse_or<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        Ok(self.parse_opt(name, expected)?.unwrap_or(default))
    }
}

/// Settings of the HTTP runtime: port, body limit, log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `PORT`, default 8080. 0 binds a free port (tests).
    pub port: u16,
    /// `MAX_BODY_BYTES`, default 16 MiB.
    pub max_body_bytes: usize,
    /// `LOG_FORMAT`, default `json`.
    pub log_format: LogFormat,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            log_format: LogFormat::Json,
        }
    }
}

impl RuntimeConfig {
    /// Reads `PORT`, `MAX_BODY_BYTES` and `LOG_FORMAT` through `lookup`.
    ///
    /// # Errors
    /// Names the first variable whose value is unusable, and the form expected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars::new(lookup);
        let port = vars.parse_or(PORT, DEFAULT_PORT, "a TCP port number, 0-65535")?;
        let max_body_bytes = vars.parse_or(
            MAX_BODY_BYTES,
            DEFAULT_MAX_BODY_BYTES,
            "a positive number of bytes (default 16777216)",
        )?;
        if max_body_bytes == 0 {
            return Err(ConfigError::Invalid {
                variable: MAX_BODY_BYTES,
                value: "0".into(),
                expected: "a positive number of bytes (default 16777216)",
            });
        }
        let log_format = vars.parse_or(LOG_FORMAT, LogFormat::Json, "`json` or `text`")?;
        Ok(Self {
            port,
            max_body_bytes,
            log_format,
        })
    }

    /// [`from_lookup`](Self::from_lookup) on the process environment.
    ///
    /// # Errors
    /// As [`from_lookup`](Self::from_lookup).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<RuntimeConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RuntimeConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() -> Result<(), ConfigError> {
        assert_eq!(config(&[])?, RuntimeConfig::default());
        let d = RuntimeConfig::default();
        assert_eq!(d.port, 8080);
        assert_eq!(d.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(d.log_format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn reads_every_variable() -> Result<(), ConfigError> {
        let c = config(&[
            ("PORT", "9090"),
            ("MAX_BODY_BYTES", " 1024 "),
            ("LOG_FORMAT", "TEXT"),
        ])?;
        assert_eq!(c.port, 9090);
        assert_eq!(c.max_body_bytes, 1024);
        assert_eq!(c.log_format, LogFormat::Text);
        Ok(())
    }

    #[test]
    fn empty_values_count_as_unset() -> Result<(), ConfigError> {
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
        let e = config(&[("LOG_FORMAT", "yaml")]).expect_err("unknown format");
        assert_eq!(
            e.to_string(),
            "LOG_FORMAT=\"yaml\" is invalid: expected `json` or `text`"
        );
    }

    #[test]
    fn required_reports_missing() {
        let vars = Vars::new(|_: &str| None);
        let e = vars
            .required("GOOGLE_CLOUD_PROJECT", "a project id")
            .expect_err("missing");
        assert_eq!(
            e.to_string(),
            "GOOGLE_CLOUD_PROJECT is not set: expected a project id"
        );
    }
}
