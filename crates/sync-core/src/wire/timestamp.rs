//! Timestamps on the wire: the forms the recipe's publisher writes, read as
//! UTC, and the one form this system writes.

use crate::error::ValidationError;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// Parses an ISO-8601 timestamp as the recipe's publisher writes it.
///
/// Accepts naive text (`datetime.utcnow().isoformat()`, read as UTC), a `Z`
/// suffix or a numeric offset, with a `T` or a space between date and time and
/// up to nanoseconds; keeps microseconds (Datastore's precision) and drops finer
/// digits.
///
/// # Errors
/// [`ValidationError::InvalidTimestamp`] when the text is none of these forms.
///
/// ```
/// use sync_core::parse_timestamp;
/// let naive = parse_timestamp("2025-07-23T10:15:30.123456")?;
/// let zulu = parse_timestamp("2025-07-23T10:15:30.123456Z")?;
/// let offset = parse_timestamp("2025-07-23T12:15:30.123456+02:00")?;
/// assert_eq!(naive, zulu);
/// assert_eq!(zulu, offset);
/// # Ok::<(), sync_core::ValidationError>(())
/// ```
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, ValidationError> {
    let invalid = |reason: &str| ValidationError::InvalidTimestamp {
        value: text.chars().take(64).collect(),
        reason: reason.to_string(),
    };
    let parsed = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
            .map_err(|_| invalid("expected YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]"))?;
        naive.and_utc()
    };
    let micros = parsed.timestamp_micros();
    DateTime::from_timestamp_micros(micros).ok_or_else(|| invalid("out of range"))
}

/// Formats a timestamp as RFC 3339 with microseconds and `Z`.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_forms_agree() {
        let forms = [
            "2025-07-23T09:59:00.5",
            "2025-07-23T09:59:00.500000Z",
            "2025-07-23T11:59:00.500000+02:00",
            "2025-07-23 09:59:00.500",
            "2025-07-23T09:59:00.500000999Z",
        ];
        let first = parse_timestamp(forms[0]).expect("naive");
        for f in forms {
            assert_eq!(parse_timestamp(f).expect(f), first, "{f}");
        }
        assert!(parse_timestamp("2025-07-23T09:59:00").is_ok());
    }
}
