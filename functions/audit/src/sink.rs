//! Where audit lines go: one JSON object per line, each within one Cloud
//! Logging entry.

use serde_json::Value;
use std::io::Write;
use sync_core::logline::{fit_line, Size, LINE_BUDGET_BYTES};

/// Where audit lines go.
pub trait AuditSink: Send + Sync {
    /// Writes the entries, one JSON object per line, all or nothing as far as
    /// the sink can tell.
    ///
    /// # Errors
    /// When the lines could not be written.
    fn write(&self, entries: &[Value]) -> std::io::Result<()>;
}

/// Standard output, where Cloud Run's logging agent reads structured logs;
/// no line passes the line budget (`sync_core::logline`).
#[derive(Debug, Default)]
pub struct StdoutSink;

impl AuditSink for StdoutSink {
    fn write(&self, entries: &[Value]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(512);
        for e in entries {
            // The entries are made to fit (`entry`); this is the last guard.
            if Size::of(e).fits(LINE_BUDGET_BYTES) {
                serde_json::to_writer(&mut buf, e)?;
            } else {
                let line = serde_json::to_vec(e)?;
                buf.extend(fit_line(&line, LINE_BUDGET_BYTES).unwrap_or(line));
            }
            buf.push(b'\n');
        }
        // One write under the lock, so lines never interleave with other output.
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)?;
        out.flush()
    }
}
