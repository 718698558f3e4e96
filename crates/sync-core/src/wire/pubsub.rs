//! Pub/Sub's published limits on a message's attributes, and how a value is
//! cut to fit one.

/// Pub/Sub's limit on attributes per message.
pub const MAX_ATTRIBUTES: usize = 100;

/// Pub/Sub's limit on one attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// `s` cut to fit one attribute value (at a character boundary, with `…`
/// marking the cut), so that a long entity id or error message never makes a
/// publish fail.
///
/// ```
/// use sync_core::wire::{attribute_safe, MAX_ATTRIBUTE_VALUE_BYTES};
/// assert_eq!(attribute_safe("short"), "short");
/// let cut = attribute_safe(&"é".repeat(1000));
/// assert!(cut.len() <= MAX_ATTRIBUTE_VALUE_BYTES && cut.ends_with('…'));
/// ```
pub fn attribute_safe(s: &str) -> String {
    if s.len() <= MAX_ATTRIBUTE_VALUE_BYTES {
        return s.to_string();
    }
    let mut end = MAX_ATTRIBUTE_VALUE_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
