//! Settings read through a lookup function, and the names every binary shares.
//!
//! Nothing here reads the process environment: a binary passes
//! `|k| std::env::var(k).ok()`, a test a map. [`Vars`] reads and parses one
//! variable at a time; [`Problems`] collects what is wrong, so a reader made
//! of several parts (the HTTP runtime, the store, Pub/Sub, the function's
//! own settings) reports every problem of every part at once.

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Project of the Datastore database and the topics.
pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
/// `host:port` of the Datastore emulator; unset in production.
pub const DATASTORE_EMULATOR_HOST: &str = "DATASTORE_EMULATOR_HOST";
/// `host:port` of the Pub/Sub emulator; unset in production.
pub const PUBSUB_EMULATOR_HOST: &str = "PUBSUB_EMULATOR_HOST";
/// Path of the schema history file (.json or .toml, see [`crate::ingest::schema`]),
/// which the sync and audit functions both read; unset: version 1 only.
pub const SCHEMA_HISTORY_FILE: &str = "SCHEMA_HISTORY_FILE";

/// A setting that is absent or unusable.
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

/// Reads settings through a lookup function. Values are trimmed; an empty
/// value counts as unset.
///
/// ```
/// use std::collections::HashMap;
/// use sync_core::env::Vars;
///
/// let map = HashMap::from([("RETRIES", "3")]);
/// let vars = Vars::new(|k: &str| map.get(k).map(|v| v.to_string()));
/// let retries: u32 = vars.parse_or("RETRIES", 5, "a whole number")?;
/// assert_eq!(retries, 3);
/// # Ok::<(), sync_core::env::ConfigError>(())
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
    /// ```
    /// use sync_core::env::Vars;
    /// let vars = Vars::new(|_: &str| None);
    /// let e = vars.required("GOOGLE_CLOUD_PROJECT", "a project id").expect_err("unset");
    /// assert_eq!(e.to_string(), "GOOGLE_CLOUD_PROJECT is not set: expected a project id");
    /// ```
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
    /// ```
    /// use sync_core::env::Vars;
    /// let vars = Vars::new(|_: &str| Some("many".to_string()));
    /// assert!(vars.parse_opt::<u32>("N", "a whole number").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when set but unparseable.
    pub fn parse_opt<T: FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.parse_where(name, expected, |_| true)
    }

    /// `name` parsed as `T`, or `default` when unset.
    ///
    /// ```
    /// use sync_core::env::Vars;
    /// let vars = Vars::new(|_: &str| None);
    /// assert_eq!(vars.parse_or("N", 7u32, "a whole number")?, 7);
    /// # Ok::<(), sync_core::env::ConfigError>(())
    /// ```
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

    /// `name` parsed as `T` and accepted by `accept`, or `None` when unset.
    ///
    /// ```
    /// use sync_core::env::Vars;
    /// let vars = Vars::new(|_: &str| Some("0".to_string()));
    /// let e = vars.parse_where::<u32>("N", "a positive number", |n| *n > 0).expect_err("zero");
    /// assert_eq!(e.to_string(), "N=\"0\" is invalid: expected a positive number");
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when set but unparseable or not accepted.
    pub fn parse_where<T: FromStr>(
        &self,
        name: &'static str,
        expected: &'static str,
        accept: impl Fn(&T) -> bool,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name)
            .map(|value| match value.parse() {
                Ok(parsed) if accept(&parsed) => Ok(parsed),
                _ => Err(ConfigError::Invalid {
                    variable: name,
                    value,
                    expected,
                }),
            })
            .transpose()
    }
}

/// Every problem a configuration reader found, one a line, in the order found.
///
/// A reader notes each problem and goes on with a stand-in value, so that it
/// reaches every setting; [`finish`](Self::finish) then returns the settings
/// only if nothing was noted.
///
/// ```
/// use sync_core::env::{Problems, Vars};
///
/// let vars = Vars::new(|k: &str| (k == "PORT").then(|| "http".to_string()));
/// let mut problems = Problems::new();
/// let port: u16 = problems.or(vars.parse_or("PORT", 8080, "a TCP port number"), 8080);
/// let project = problems.or_default(vars.required("PROJECT", "a project id"));
/// let e = problems.finish((port, project)).expect_err("two problems");
/// assert_eq!(e.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<String>);

impl Problems {
    /// No problem yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a problem.
    pub fn push(&mut self, problem: impl fmt::Display) {
        self.0.push(problem.to_string());
    }

    /// The value of `result`, or `fallback` after noting its error.
    pub fn or<T, E: fmt::Display>(&mut self, result: Result<T, E>, fallback: T) -> T {
        result.unwrap_or_else(|e| {
            self.push(e);
            fallback
        })
    }

    /// The value of `result`, or `T::default()` after noting its error.
    pub fn or_default<T: Default, E: fmt::Display>(&mut self, result: Result<T, E>) -> T {
        self.or(result, T::default())
    }

    /// Whether nothing was noted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were noted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in the order noted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// `value` when nothing was noted.
    ///
    /// # Errors
    /// `self`, when anything was noted.
    pub fn finish<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// The problems, one a line.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// Runs `reader` on `lookup` and returns what it read, or every problem it noted.
///
/// ```
/// use sync_core::env::{read, GOOGLE_CLOUD_PROJECT};
///
/// let project = read(|_| None, |vars, problems| {
///     problems.or_default(vars.required(GOOGLE_CLOUD_PROJECT, "a project id"))
/// });
/// assert!(project.is_err());
/// ```
///
/// # Errors
/// The [`Problems`] noted, when there are any.
pub fn read<F, T>(
    lookup: F,
    reader: impl FnOnce(&Vars<F>, &mut Problems) -> T,
) -> Result<T, Problems>
where
    F: Fn(&str) -> Option<String>,
{
    let vars = Vars::new(lookup);
    let mut problems = Problems::new();
    let value = reader(&vars, &mut problems);
    problems.finish(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Vars<impl Fn(&str) -> Option<String>> {
        Vars::new(move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn values_are_trimmed_and_empty_is_unset() -> Result<(), ConfigError> {
        let v = vars(&[("A", " 3 "), ("B", "  ")]);
        assert_eq!(v.get("A").as_deref(), Some("3"));
        assert_eq!(v.get("B"), None);
        assert_eq!(v.parse_or("B", 9u8, "a number")?, 9);
        assert_eq!(v.parse_opt::<u8>("A", "a number")?, Some(3));
        Ok(())
    }

    #[test]
    fn errors_name_the_variable_and_the_expected_form() {
        let v = vars(&[("PORT", "eighty")]);
        let e = v
            .parse_or::<u16>("PORT", 8080, "a TCP port number")
            .expect_err("not a number");
        assert_eq!(
            e.to_string(),
            "PORT=\"eighty\" is invalid: expected a TCP port number"
        );
        let e = v.required("PROJECT", "a project id").expect_err("unset");
        assert_eq!(e.to_string(), "PROJECT is not set: expected a project id");
    }

    #[test]
    fn problems_keep_the_order_found_and_stand_ins_keep_reading() {
        let v = vars(&[("N", "0"), ("M", "x")]);
        let mut problems = Problems::new();
        let n = problems.or(
            v.parse_where::<u8>("N", "a positive number", |n| *n > 0),
            None,
        );
        let m: u8 = problems.or_default(v.parse_or("M", 1, "a number"));
        assert_eq!((n, m), (None, 0));
        problems.push("something else");
        assert_eq!(
            problems.to_string(),
            "N=\"0\" is invalid: expected a positive number\n\
             M=\"x\" is invalid: expected a number\n\
             something else"
        );
        assert_eq!(problems.iter().count(), 3);
        assert!(problems.finish(()).is_err());
        assert_eq!(Problems::new().finish(5), Ok(5));
    }
}
