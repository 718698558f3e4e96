//! The two formats configuration files come in, chosen by the file name: one
//! place for the merge policy and the schema history to parse them.

use serde::de::DeserializeOwned;

/// JSON or TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Toml,
}

impl Format {
    /// The format a file name ends in (`.json`, `.toml`), if either.
    pub(crate) fn of(file_name: &str) -> Option<Self> {
        if file_name.ends_with(".json") {
            Some(Self::Json)
        } else if file_name.ends_with(".toml") {
            Some(Self::Toml)
        } else {
            None
        }
    }

    /// `JSON` or `TOML`, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        }
    }

    /// `text` read as a `T`, or the parser's explanation.
    pub(crate) fn parse<T: DeserializeOwned>(self, text: &str) -> Result<T, String> {
        match self {
            Self::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
            Self::Toml => toml::from_str(text).map_err(|e| e.to_string()),
        }
    }
}
