//! Ranking: a field's candidate writes ([`Candidate`]), which one wins under
//! its rule, and which candidates another one makes obsolete.
//!
//! Every rule of [`super::policy`] is a total order on the candidates of a
//! field (the *rank*); the order key breaks ties, then the value's canonical
//! text, so two different candidates never rank equal. A candidate
//! *dominates* another when it is both newer and of higher rank: the merge
//! keeps only the candidates nothing dominates, and the visible one is the
//! highest-ranked of those (see [`mod@crate::merge`]).

use super::conflict::LossReason;
use super::order::OrderKey;
use super::policy::{FieldRule, MergePolicy};
use crate::value::{canonical, compare_values};
use serde_json::Value;
use std::cmp::Ordering;

/// One write of one field: its value and where it stands in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Order key of the event that wrote it.
    pub key: OrderKey,
    /// The value written.
    pub value: Value,
}

/// The rank of one field's candidates: its rule, and the policy's source
/// priorities for `priority`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rank<'a> {
    policy: &'a MergePolicy,
    rule: FieldRule,
}

impl<'a> Rank<'a> {
    /// The rank that decides `field` under `policy`.
    pub(crate) fn of(policy: &'a MergePolicy, field: &str) -> Self {
        Self {
            policy,
            rule: policy.rule_for(field),
        }
    }

    /// The rule this rank follows.
    pub(crate) fn rule(self) -> FieldRule {
        self.rule
    }

    /// Compares two candidates; total, since the order key breaks ties.
    fn cmp(self, a: &Candidate, b: &Candidate) -> Ordering {
        let primary = match self.rule {
            FieldRule::Lww | FieldRule::Union => Ordering::Equal,
            FieldRule::Max => compare_values(&a.value, &b.value),
            FieldRule::Min => compare_values(&b.value, &a.value),
            FieldRule::Priority => self
                .policy
                .source_rank(&a.key.source)
                .cmp(&self.policy.source_rank(&b.key.source)),
        };
        primary
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| canonical(&a.value).cmp(&canonical(&b.value)))
    }

    /// Whether `a` is newer than `b` and ranks above it, so `b` can never be
    /// visible again while `a` is kept.
    pub(crate) fn dominates(self, a: &Candidate, b: &Candidate) -> bool {
        a.key > b.key && self.cmp(a, b) == Ordering::Greater
    }

    /// Index of the visible candidate among `cands` (the highest-ranked), or
    /// `None` when there is none.
    pub(crate) fn winner(self, cands: &[Candidate]) -> Option<usize> {
        let mut best: Option<(usize, &Candidate)> = None;
        for (i, c) in cands.iter().enumerate() {
            if best.is_none_or(|(_, b)| self.cmp(c, b) == Ordering::Greater) {
                best = Some((i, c));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Why a write loses to a better candidate under this rank.
    pub(crate) fn loss_reason(self) -> LossReason {
        match self.rule {
            FieldRule::Lww | FieldRule::Union => LossReason::OlderThanWinner,
            FieldRule::Max => LossReason::SmallerValue,
            FieldRule::Min => LossReason::LargerValue,
            FieldRule::Priority => LossReason::LowerPriority,
        }
    }
}
