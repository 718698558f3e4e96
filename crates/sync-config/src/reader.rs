//! [`Reader`]: settings read through a lookup function into serde structs,
//! every problem noted before any is reported.

use figment::providers::Serialized;
use figment::Figment;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;

/// A variable a settings struct reads, with the form it takes in words (what
/// a problem with it says was expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// What is accepted, in words: "a TCP port number, 0-65535".
    pub expected: &'static str,
}

impl Var {
    /// `name`, taking the form `expected`.
    pub const fn new(name: &'static str, expected: &'static str) -> Self {
        Self { name, expected }
    }
}

/// A program's configuration refused: every problem, one a line, under a
/// heading that names the program ("the sync function's configuration is
/// invalid:").
#[derive(Debug)]
pub struct ConfigErrors {
    /// The program, as the heading names it: "sync function".
    pub program: &'static str,
    /// What is wrong.
    pub problems: Problems,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the {}'s configuration is invalid:", self.program)?;
        for e in self.problems.iter() {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Every problem found, one a line, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<String>);

impl std::ops::Deref for Problems {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

/// Reads settings through `lookup` (a binary passes `|k| std::env::var(k).ok()`,
/// a test a map) and files through `read_file`, noting every problem; values
/// are trimmed and an empty one counts as unset.
///
/// ```
/// use serde::Deserialize;
/// use sync_config::{Reader, Var};
///
/// #[derive(Default, Deserialize)]
/// #[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
/// struct Settings {
///     port: Option<u16>,
///     retries: Option<u32>,
/// }
/// const VARS: &[Var] = &[
///     Var::new("PORT", "a TCP port number"),
///     Var::new("RETRIES", "a whole number"),
/// ];
///
/// let lookup = |k: &str| (k == "PORT").then(|| " eighty ".to_string());
/// let no_files = |_: &str| Err(std::io::ErrorKind::NotFound.into());
/// let mut reader = Reader::new(&lookup, &no_files);
/// let settings: Settings = reader.read(VARS);
/// assert_eq!((settings.port, settings.retries), (None, None));
/// let problems = reader.finish(()).expect_err("PORT is not a number");
/// assert_eq!(problems.to_string(), r#"PORT="eighty" is invalid: expected a TCP port number"#);
/// ```
pub struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    read_file: &'a dyn Fn(&str) -> std::io::Result<String>,
    /// Every variable read so far, for [`invalid`](Self::invalid).
    read: Vec<Var>,
    problems: Problems,
}

impl<'a> Reader<'a> {
    /// A reader with no problem noted yet.
    pub fn new(
        lookup: &'a dyn Fn(&str) -> Option<String>,
        read_file: &'a dyn Fn(&str) -> std::io::Result<String>,
    ) -> Self {
        Self {
            lookup,
            read_file,
            read: Vec::new(),
            problems: Problems::default(),
        }
    }

    /// The trimmed value of `name`, or `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `vars` deserialized into `T`, whose fields are the variables' names
    /// (`#[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]`). Numbers and
    /// booleans are parsed from the text. Each value that does not
    /// deserialize is noted, naming the variable and the form expected, and
    /// left out, so that `T`'s default stands in for it and the others are
    /// still read.
    pub fn read<T: DeserializeOwned + Default>(&mut self, vars: &[Var]) -> T {
        self.read.extend_from_slice(vars);
        let mut values: BTreeMap<&str, String> = vars
            .iter()
            .filter_map(|v| Some((v.name, self.get(v.name)?)))
            .collect();
        // Serde stops at the first error: set the value aside, read again.
        let mut bad = Vec::new();
        let settings = loop {
            let error = match Figment::from(Serialized::defaults(&values)).extract_lossy() {
                Ok(settings) => break settings,
                Err(e) => e,
            };
            let key = error.path.first().map(String::as_str).unwrap_or_default();
            match values.remove_entry(key) {
                Some(entry) => bad.push(entry),
                None => {
                    self.push(error);
                    break T::default();
                }
            }
        };
        // Noted in the order of `vars`.
        for var in vars {
            if let Some((_, value)) = bad.iter().find(|(name, _)| *name == var.name) {
                self.invalid_value(var, value);
            }
        }
        settings
    }

    /// Notes that the value of `name`, a variable read already, is not of
    /// the form expected (a check serde cannot make: a range, a name).
    pub fn invalid(&mut self, name: &str) {
        let value = self.get(name).unwrap_or_default();
        match self.read.iter().find(|v| v.name == name).copied() {
            Some(var) => self.invalid_value(&var, &value),
            None => self.push(format!("{name}={value:?} is invalid")),
        }
    }

    fn invalid_value(&mut self, var: &Var, value: &str) {
        self.push(format!(
            "{}={value:?} is invalid: expected {}",
            var.name, var.expected
        ));
    }

    /// Notes that `name`, which is required, is unset: `expected` says what
    /// it should be.
    pub fn missing(&mut self, name: &str, expected: &str) {
        self.push(format!("{name} is not set: expected {expected}"));
    }

    /// Notes a problem.
    pub fn push(&mut self, problem: impl fmt::Display) {
        self.problems.0.push(problem.to_string());
    }

    /// The path `name` holds and the text of the file there, when it is set;
    /// a file that cannot be read is noted.
    pub fn file(&mut self, name: &str) -> Option<(String, String)> {
        let path = self.get(name)?;
        match (self.read_file)(&path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                self.push(format!("{name}={path:?} cannot be read: {e}"));
                None
            }
        }
    }

    /// `value`, when no problem was noted.
    ///
    /// # Errors
    /// Every problem noted.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// Deserializes an optional setting from its text with `FromStr`, for types
/// figment would read too leniently: a `bool` takes `true` and `false` only
/// (figment also takes `yes`, `on`, `1`). Use it with
/// `#[serde(deserialize_with = "sync_config::parsed")]` on an `Option` field
/// of a struct read with `#[serde(default)]`.
///
/// # Errors
/// The parser's, when the text does not parse.
pub fn parsed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// `read` run on a reader of `pairs` (and of no file): how tests read
/// settings from a map.
///
/// # Errors
/// Every problem `read` noted.
pub fn read_pairs<T>(
    pairs: &[(&str, &str)],
    read: impl FnOnce(&mut Reader) -> T,
) -> Result<T, Problems> {
    let lookup = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let no_files = |_: &str| Err(std::io::ErrorKind::NotFound.into());
    let mut reader = Reader::new(&lookup, &no_files);
    let value = read(&mut reader);
    reader.finish(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "SCREAMING_SNAKE_CASE")]
    struct Settings {
        n: Option<u8>,
        m: u8,
        #[serde(deserialize_with = "parsed")]
        flag: Option<bool>,
        name: Option<String>,
    }
    const VARS: &[Var] = &[
        Var::new("N", "a positive number"),
        Var::new("M", "a number"),
        Var::new("FLAG", "`true` or `false`"),
        Var::new("NAME", "a name"),
    ];

    fn read(pairs: &[(&str, &str)]) -> (Settings, Result<(), Problems>) {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        let lookup = |k: &str| map.get(k).map(|v| v.to_string());
        let files = |p: &str| match p {
            "here" => Ok("text".to_string()),
            _ => Err(std::io::Error::other("no such file")),
        };
        let mut reader = Reader::new(&lookup, &files);
        let settings: Settings = reader.read(VARS);
        assert_eq!(reader.file("F"), None, "unset or unreadable");
        assert_eq!(
            reader.file("G"),
            map.get("G").map(|_| ("here".into(), "text".into()))
        );
        if settings.n == Some(0) {
            reader.invalid("N");
            reader.missing("P", "a project id");
        }
        (settings, reader.finish(()))
    }

    #[test]
    fn values_are_trimmed_parsed_and_empty_is_unset() {
        let (s, r) = read(&[
            ("N", " 3 "),
            ("M", "  "),
            ("FLAG", "true"),
            ("NAME", "007"),
            ("G", "here"),
        ]);
        assert_eq!(r, Ok(()));
        let want = Settings {
            n: Some(3),
            m: 0,
            flag: Some(true),
            name: Some("007".into()),
        };
        assert_eq!(s, want);
    }

    #[test]
    fn every_problem_is_noted_in_order_and_defaults_stand_in() {
        let (s, r) = read(&[
            ("N", "0x"),
            ("M", "300"),
            ("FLAG", "yes"),
            ("NAME", "x"),
            ("F", "gone"),
        ]);
        assert_eq!(
            (s.n, s.m, s.flag, s.name.as_deref()),
            (None, 0, None, Some("x"))
        );
        assert_eq!(
            r.expect_err("four problems").to_string(),
            "N=\"0x\" is invalid: expected a positive number\n\
             M=\"300\" is invalid: expected a number\n\
             FLAG=\"yes\" is invalid: expected `true` or `false`\n\
             F=\"gone\" cannot be read: no such file"
        );
        let (_, r) = read(&[("N", "0")]);
        assert_eq!(
            r.expect_err("checked").iter().collect::<Vec<_>>(),
            [
                "N=\"0\" is invalid: expected a positive number",
                "P is not set: expected a project id"
            ]
        );
    }
}
