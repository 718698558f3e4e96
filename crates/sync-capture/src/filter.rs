//! Which kinds are captured, and the refusal to capture the sync function's
//! own.
//!
//! The sync function writes its kinds itself: the default kind (`SYNC_KIND`,
//! `SyncEntity` unless configured), the tombstones, the conflict records and
//! the probe key ([`OwnKinds`]). Capturing them would send the sync
//! function's writes back to it. A [`CaptureFilter`] is therefore either
//! every kind but those, or a list that names none of them: a list that does
//! is refused when the filter is built, so the function can refuse the
//! configuration at start-up.

use std::collections::BTreeSet;
use std::fmt;
use sync_core::ingest::limits::{DEFAULT_CONFLICT_KIND, DEFAULT_TOMBSTONE_KIND, PROBE_KIND};
use sync_core::value::check_name;
use thiserror::Error;

/// The kinds the sync function writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnKinds(BTreeSet<String>);

impl OwnKinds {
    /// The sync function's kinds when its default kind is `sync_kind` (the
    /// value of `SYNC_KIND`): that kind, [`DEFAULT_TOMBSTONE_KIND`],
    /// [`DEFAULT_CONFLICT_KIND`] and [`PROBE_KIND`].
    ///
    /// ```
    /// use sync_capture::filter::OwnKinds;
    /// let own = OwnKinds::new("SyncEntity");
    /// assert!(own.contains("SyncTombstone") && own.contains("SyncProbe"));
    /// assert!(!own.contains("Product"));
    /// ```
    pub fn new(sync_kind: &str) -> Self {
        Self(
            [
                sync_kind,
                DEFAULT_TOMBSTONE_KIND,
                DEFAULT_CONFLICT_KIND,
                PROBE_KIND,
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
        )
    }

    /// Whether the sync function writes `kind`.
    pub fn contains(&self, kind: &str) -> bool {
        self.0.contains(kind)
    }

    /// The kinds, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for OwnKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iter().collect::<Vec<_>>().join(", "))
    }
}

/// The kinds whose changes are captured. Built only through
/// [`every_kind`](Self::every_kind) or [`only`](Self::only), so it never
/// admits one of the sync function's own kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFilter {
    /// `None`: every kind but `own`.
    only: Option<BTreeSet<String>>,
    own: OwnKinds,
}

impl CaptureFilter {
    /// Every kind except the sync function's own: the default.
    pub fn every_kind(own: OwnKinds) -> Self {
        Self { only: None, own }
    }

    /// Exactly `kinds`.
    ///
    /// # Errors
    /// [`FilterError`] when the list is empty, names an invalid kind, or
    /// names any of `own` (all of them are listed).
    ///
    /// ```
    /// use sync_capture::filter::{CaptureFilter, OwnKinds};
    /// let filter = CaptureFilter::only(["Product", "Order"], OwnKinds::new("SyncEntity"))?;
    /// assert!(filter.admits("Product") && !filter.admits("Customer"));
    /// let err = CaptureFilter::only(["Product", "SyncEntity"], OwnKinds::new("SyncEntity"))
    ///     .expect_err("the sync function's kind");
    /// assert!(err.to_string().contains("SyncEntity"));
    /// # Ok::<(), sync_capture::filter::FilterError>(())
    /// ```
    pub fn only(
        kinds: impl IntoIterator<Item = impl Into<String>>,
        own: OwnKinds,
    ) -> Result<Self, FilterError> {
        let kinds: BTreeSet<String> = kinds.into_iter().map(Into::into).collect();
        if kinds.is_empty() {
            return Err(FilterError::Empty);
        }
        for kind in &kinds {
            check_name(kind).map_err(|reason| FilterError::InvalidKind {
                kind: kind.clone(),
                reason,
            })?;
        }
        let clashing: Vec<String> = kinds.iter().filter(|k| own.contains(k)).cloned().collect();
        if !clashing.is_empty() {
            return Err(FilterError::OwnKinds {
                kinds: clashing,
                own: own.to_string(),
            });
        }
        Ok(Self {
            only: Some(kinds),
            own,
        })
    }

    /// Whether changes of `kind` are captured.
    pub fn admits(&self, kind: &str) -> bool {
        match &self.only {
            Some(kinds) => kinds.contains(kind),
            None => !self.own.contains(kind),
        }
    }

    /// The listed kinds, or `None` for every kind but the sync function's.
    pub fn kinds(&self) -> Option<impl Iterator<Item = &str>> {
        self.only.as_ref().map(|k| k.iter().map(String::as_str))
    }

    /// The sync function's kinds, never admitted.
    pub fn own_kinds(&self) -> &OwnKinds {
        &self.own
    }
}

/// Why a list of kinds cannot be a [`CaptureFilter`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// An empty list would capture nothing.
    #[error("the list of kinds to capture is empty; leave it unset to capture every kind but the sync function's own")]
    Empty,
    /// A name Datastore would not accept as a kind.
    #[error("`{kind}` is not a valid kind: {reason}")]
    InvalidKind {
        /// The name.
        kind: String,
        /// Why.
        reason: String,
    },
    /// The list names kinds the sync function writes.
    #[error("the kinds to capture include the sync function's own ({}): their changes are the sync function's writes and would come back to it; the sync function's kinds are {own}", kinds.join(", "))]
    OwnKinds {
        /// The listed kinds that are the sync function's.
        kinds: Vec<String>,
        /// All of the sync function's kinds.
        own: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_admits_all_but_the_sync_functions_own() {
        let filter = CaptureFilter::every_kind(OwnKinds::new("Synced"));
        for kind in ["Synced", "SyncTombstone", "SyncConflict", "SyncProbe"] {
            assert!(!filter.admits(kind), "{kind}");
        }
        // The recipe's default kind is the sync function's only when configured so.
        for kind in ["Product", "SyncEntity", "synced"] {
            assert!(filter.admits(kind), "{kind}");
        }
        assert!(filter.kinds().is_none());
    }

    #[test]
    fn a_list_naming_own_kinds_is_refused_with_every_clash() {
        let err = CaptureFilter::only(
            ["Product", "SyncTombstone", "SyncEntity"],
            OwnKinds::new("SyncEntity"),
        )
        .expect_err("own kinds");
        assert_eq!(
            err,
            FilterError::OwnKinds {
                kinds: vec!["SyncEntity".into(), "SyncTombstone".into()],
                own: "SyncConflict, SyncEntity, SyncProbe, SyncTombstone".into(),
            }
        );
        for own in ["SyncConflict", "SyncProbe"] {
            assert!(CaptureFilter::only([own], OwnKinds::new("SyncEntity")).is_err());
        }
    }

    #[test]
    fn empty_and_invalid_lists_are_refused() {
        let none: [&str; 0] = [];
        assert_eq!(
            CaptureFilter::only(none, OwnKinds::new("SyncEntity")),
            Err(FilterError::Empty)
        );
        for bad in ["", "__kind__"] {
            assert!(matches!(
                CaptureFilter::only([bad], OwnKinds::new("SyncEntity")),
                Err(FilterError::InvalidKind { .. })
            ));
        }
    }

    #[test]
    fn a_list_admits_exactly_its_kinds() {
        let filter =
            CaptureFilter::only(["Order", "Product"], OwnKinds::new("SyncEntity")).expect("valid");
        assert!(filter.admits("Order") && filter.admits("Product"));
        assert!(!filter.admits("Customer") && !filter.admits("SyncEntity"));
        assert_eq!(
            filter.kinds().map(Iterator::collect::<Vec<_>>),
            Some(vec!["Order", "Product"])
        );
    }
}
