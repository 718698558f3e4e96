//! `syncctl resync`: the current state of a kind, announced again for a
//! downstream consumer that subscribed late.
//!
//! It reads the entities page by page in key order with Datastore query
//! cursors ([`sync_store::Scan`]) and publishes each one's announcement of its
//! current version ([`announcement_of`]: what the sync function publishes for
//! that version, built by the same code from the stored state) with the
//! attribute `resync=true` ([`sync_pubsub::messages::resync_announcement`]).
//! Each goes to the topic its live announcement went to (`<prefix>create` for
//! an entity whose current version is its creation, `<prefix>update` else),
//! or every one to `--topic`. Deleted entities are not announced:
//! `--tombstones` lists their tombstones instead, one delete announcement's
//! JSON per line on stdout.
//!
//! After every page whose announcements Pub/Sub has confirmed it prints
//! `cursor: <token>` on stdout; `--resume <token>` continues after that page,
//! so a killed run announces every entity at least once. The token holds the
//! Datastore cursor and what was scanned (kind, prefix, tombstones or not),
//! so it cannot resume another scan; its format (a serde struct, `v` 1) is
//! the first release's, so every token printed resumes. A rate limiter
//! (`governor`) holds the entities read and announced to `--rate` per
//! second, so the live path keeps its share of Pub/Sub and Datastore. Progress (count and rate) goes to
//! stderr.

use super::clients::{publisher, store, Global};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use futures::stream::{self, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use sync_core::wire::topology;
use sync_core::{Announcement, EntityState, EventPublisher, MergePolicy, Operation, StoredEntity};
use sync_pubsub::{messages, PubSubPublisher};
use sync_store::{DatastoreAdmin, Scan, Scanned};

/// Announcements in flight at once.
const CONCURRENCY: usize = 64;
/// What a cursor line starts with.
pub const CURSOR_LINE: &str = "cursor: ";
/// What the closing line starts with.
pub const DONE_LINE: &str = "done: ";
/// The progress line on stderr.
const PROGRESS: &str = "{spinner} {pos} entities read, {msg}, {per_sec} ({elapsed})";
/// Format of the resume token.
const TOKEN_FORMAT: u64 = 1;

/// Arguments of `resync`.
#[derive(Args, Debug)]
pub struct ResyncArgs {
    /// Kind of the entities.
    #[arg(long, default_value = sync_core::ingest::limits::DEFAULT_KIND)]
    pub kind: String,
    /// Only this entity (one lookup, no paging).
    #[arg(long, conflicts_with_all = ["prefix", "resume"])]
    pub entity_id: Option<String>,
    /// Only entities whose id starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Publish every announcement to this one topic (a single new consumer's)
    /// instead of the per-operation topics.
    #[arg(long)]
    pub topic: Option<String>,
    /// Prefix of the per-operation topics, as the sync function's
    /// EXTERNAL_TOPIC_PREFIX.
    #[arg(long, default_value = sync_core::wire::topology::EXTERNAL_TOPIC_PREFIX)]
    pub topic_prefix: String,
    /// Entities read and announced per second (`N` or `N/s`).
    #[arg(long, default_value = "200/s", value_parser = parse_rate)]
    pub rate: f64,
    /// Read and count, publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue after the page of this cursor (a `cursor:` line's token).
    #[arg(long, value_parser = parse_cursor)]
    pub resume: Option<Cursor>,
    /// Entities per Datastore query page (one cursor line each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
    /// List the tombstones of deleted entities (one delete announcement's JSON
    /// per line on stdout) instead of announcing entities; publishes nothing.
    #[arg(long, conflicts_with = "topic")]
    pub tombstones: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Entities per second, from `N` or `N/s` (a positive, finite number).
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
    match number.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "`{text}` is not a rate: give entities per second as a positive number, e.g. 200 or 200/s"
        )),
    }
}

/// The rate limit: `rate` entities a second, at most `burst` at once after
/// a pause.
type Limiter = DefaultDirectRateLimiter;

/// A limiter of `rate` a second and `burst` (at least 1) at once.
fn limiter(rate: f64, burst: u32) -> Limiter {
    RateLimiter::direct(quota(rate, burst))
}

fn quota(rate: f64, burst: u32) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    // `parse_rate` took a positive, finite rate: the period is positive.
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

/// Where a resync resumes: what it scans and the Datastore cursor after the
/// last page it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The kind scanned.
    pub kind: String,
    /// The id prefix, if any.
    pub prefix: Option<String>,
    /// Whether tombstones were scanned.
    pub tombstones: bool,
    /// The Datastore cursor.
    pub at: Vec<u8>,
}

/// A [`Cursor`] as its token holds it: this, as JSON, in URL-safe base64,
/// with `at` in URL-safe base64 too and `v` the format, [`TOKEN_FORMAT`]
/// (a token of another format is refused). Fields in this order print the
/// token byte for byte as the first `syncctl resync` did.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    at: String,
    kind: String,
    prefix: Option<String>,
    tombstones: bool,
    v: u64,
}

impl Cursor {
    /// The token printed on a cursor line (URL-safe base64 of a small JSON).
    pub fn token(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = Token {
            at: b64.encode(&self.at),
            kind: self.kind.clone(),
            prefix: self.prefix.clone(),
            tombstones: self.tombstones,
            v: TOKEN_FORMAT,
        };
        b64.encode(serde_json::to_vec(&token).unwrap_or_default())
    }

    /// Reads a token printed by [`Cursor::token`].
    ///
    /// # Errors
    /// A sentence saying the token is not one `syncctl resync` printed.
    pub fn parse(token: &str) -> Result<Self, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let not_ours = || {
            format!(
                "`{}` is not a cursor printed by `syncctl resync` (copy the token after `{}` from its output)",
                token.chars().take(60).collect::<String>(),
                CURSOR_LINE.trim_end()
            )
        };
        let text = token
            .trim()
            .strip_prefix(CURSOR_LINE)
            .unwrap_or(token.trim());
        let bytes = b64.decode(text).map_err(|_| not_ours())?;
        let token: Token = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
        let at = b64.decode(&token.at).map_err(|_| not_ours())?;
        if token.v != TOKEN_FORMAT || at.is_empty() {
            return Err(not_ours());
        }
        Ok(Self {
            kind: token.kind,
            prefix: token.prefix,
            tombstones: token.tombstones,
            at,
        })
    }

    /// Whether this cursor continues the scan `a` asks for.
    ///
    /// # Errors
    /// What differs, when it does not.
    fn check(&self, a: &ResyncArgs) -> Result<()> {
        if self.kind != a.kind || self.prefix != a.prefix || self.tombstones != a.tombstones {
            bail!(
                "--resume: the cursor continues a resync of kind {} with prefix {:?}{}, not this one (kind {}, prefix {:?}{})",
                self.kind,
                self.prefix,
                if self.tombstones { " over tombstones" } else { "" },
                a.kind,
                a.prefix,
                if a.tombstones { " over tombstones" } else { "" },
            );
        }
        Ok(())
    }
}

/// The announcement of `stored`'s current version: the sync function's
/// ([`EntityState::announcement`] of the state rebuilt from the stored form),
/// with the stored fields as data. The stored fields are what the sync
/// function's merge policy made visible when it wrote this version, so no
/// policy is needed here, and a wrong one could not change the data.
///
/// An entity the sync function never changed (the recipe's `init`, a hand
/// edit: no bookkeeping) has no live announcement; it is announced as a
/// `create` of its stored version, without correlation id.
///
/// # Errors
/// When the stored bookkeeping is unreadable.
pub fn announcement_of(stored: &StoredEntity) -> Result<Announcement> {
    let state = EntityState::from_stored(stored).context("reading the stored bookkeeping")?;
    // The policy only picks the visible values, which are replaced below.
    Ok(match state.announcement(&MergePolicy::default()) {
        Some(a) => Announcement {
            data: stored.fields.clone(),
            ..a
        },
        None => Announcement {
            operation: if stored.exists {
                Operation::Create
            } else {
                Operation::Delete
            },
            version: stored.version,
            data: stored.fields.clone(),
            last_modified: stored.last_modified,
            correlation_id: None,
        },
    })
}

/// Where announcements go.
enum Target {
    /// `<prefix><operation>`, as the sync function publishes.
    PerOperation(String),
    /// One topic for all.
    One(String),
}

impl Target {
    fn topic(&self, operation: Operation) -> String {
        match self {
            Self::PerOperation(prefix) => topology::external_topic(prefix, operation),
            Self::One(topic) => topic.clone(),
        }
    }
}

/// What a run did so far.
#[derive(Debug, Default)]
struct Counts {
    read: u64,
    announced: u64,
}

/// What one run needs besides the arguments.
struct Run<'a> {
    args: &'a ResyncArgs,
    admin: DatastoreAdmin,
    publisher: Option<PubSubPublisher>,
    target: Target,
    limiter: Limiter,
    bar: ProgressBar,
}

pub async fn run(g: &Global, a: ResyncArgs) -> Result<()> {
    if let Some(c) = &a.resume {
        c.check(&a)?;
    }
    let admin = store(g).await?;
    // Dry runs and tombstone listings publish nothing.
    let publisher = if a.dry_run || a.tombstones {
        None
    } else {
        Some(publisher(g).await?)
    };
    let target = match &a.topic {
        Some(t) => Target::One(t.clone()),
        None => Target::PerOperation(a.topic_prefix.clone()),
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template(PROGRESS).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let burst = u32::try_from(usize::from(a.page_size).min(CONCURRENCY)).unwrap_or(1);
    let run = Run {
        limiter: limiter(a.rate, burst),
        args: &a,
        admin,
        publisher,
        target,
        bar,
    };
    let started = Instant::now();
    let counts = match &a.entity_id {
        Some(id) => run.one(id).await?,
        None => run.pages().await?,
    };
    run.bar.finish_and_clear();
    if let Some(p) = &run.publisher {
        p.flush().await;
    }
    let secs = started.elapsed().as_secs_f64();
    let verb = verb(&a);
    println!(
        "{DONE_LINE}{} read, {} {verb} in {secs:.1} s ({:.0}/s)",
        counts.read,
        counts.announced,
        counts.read as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// What the run does with what it read, as the progress and the closing
/// line say it.
fn verb(a: &ResyncArgs) -> &'static str {
    match (a.tombstones, a.dry_run) {
        (true, false) => "tombstones listed",
        (true, true) => "tombstones would be listed (dry run)",
        (false, true) => "would be announced (dry run)",
        (false, false) => "announced",
    }
}

impl Run<'_> {
    /// Every page of the scan, from the resume cursor if any.
    async fn pages(&self) -> Result<Counts> {
        let a = self.args;
        let scan = Scan {
            kind: Some(&a.kind),
            of: if a.tombstones {
                Scanned::Tombstones
            } else {
                Scanned::Entities
            },
            prefix: a.prefix.as_deref(),
            page_size: i32::from(a.page_size),
        };
        let mut start = a.resume.as_ref().map(|c| c.at.clone());
        let mut counts = Counts::default();
        loop {
            let page = self
                .admin
                .scan(&scan, start.as_deref())
                .await
                .with_context(|| format!("reading kind {} from Datastore", a.kind))?;
            self.announce(page.entities, &mut counts).await?;
            let Some(next) = page.next else {
                return Ok(counts);
            };
            // Only now: every announcement of the page is confirmed.
            let cursor = Cursor {
                kind: a.kind.clone(),
                prefix: a.prefix.clone(),
                tombstones: a.tombstones,
                at: next.clone(),
            };
            self.bar
                .suspend(|| println!("{CURSOR_LINE}{}", cursor.token()));
            start = Some(next);
        }
    }

    /// The one entity of `--entity-id`.
    async fn one(&self, id: &str) -> Result<Counts> {
        let a = self.args;
        let found = self
            .admin
            .get(Some(&a.kind), id)
            .await
            .with_context(|| format!("reading {} {id}", a.kind))?;
        let Some((stored, _)) = found else {
            bail!("no entity {id} of kind {} (and no tombstone)", a.kind);
        };
        if stored.exists == a.tombstones {
            eprintln!(
                "{} {id} {}",
                a.kind,
                if a.tombstones {
                    "is not deleted: no tombstone to list"
                } else {
                    "is deleted: not announced (--tombstones lists its tombstone)"
                }
            );
        }
        let mut counts = Counts::default();
        self.announce(vec![(id.to_string(), stored)], &mut counts)
            .await?;
        Ok(counts)
    }

    /// Announces (or lists, or counts) one page's entities, each after a
    /// token of the rate limit; returns once Pub/Sub confirmed every one.
    async fn announce(
        &self,
        entities: Vec<(String, StoredEntity)>,
        counts: &mut Counts,
    ) -> Result<()> {
        let a = self.args;
        let wanted: Vec<(String, Announcement)> = entities
            .into_iter()
            .filter(|(_, s)| s.exists != a.tombstones)
            .map(|(id, s)| {
                let ann = announcement_of(&s).with_context(|| format!("{} {id}", a.kind))?;
                Ok((id, ann))
            })
            .collect::<Result<_>>()?;
        let results: Vec<Result<bool>> = stream::iter(wanted)
            .map(|(id, ann)| async move {
                self.pace().await;
                self.bar.inc(1);
                if a.tombstones {
                    if !a.dry_run {
                        self.bar.suspend(|| println!("{}", ann.payload(&id)));
                    }
                    return Ok(true);
                }
                // A dry run counts what it would announce.
                let Some(publisher) = &self.publisher else {
                    return Ok(true);
                };
                let topic = self.target.topic(ann.operation);
                let message = messages::resync_announcement(&a.kind, &id, &ann);
                publisher
                    .publish(&topic, message)
                    .await
                    .with_context(|| format!("announcing {id} to {topic}"))?;
                Ok(true)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for r in results {
            counts.read += 1;
            match r {
                Ok(announced) => counts.announced += u64::from(announced),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.bar
            .set_message(format!("{} {}", counts.announced, verb(a)));
        match first_error {
            // The page's cursor is not printed: a resume repeats the page.
            Some(e) => {
                Err(e.context("the page is not finished: resume from the last cursor printed"))
            }
            None => Ok(()),
        }
    }

    /// Waits until the rate limit lets one more entity through.
    async fn pace(&self) {
        self.limiter.until_ready().await;
    }
}

/// `--resume`'s parser, for clap.
pub fn parse_cursor(token: &str) -> Result<Cursor, String> {
    Cursor::parse(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser as _;
    use serde_json::json;

    fn parse(extra: &[&str]) -> Result<ResyncArgs, String> {
        let argv = ["syncctl", "resync"].iter().chain(extra);
        match Cli::try_parse_from(argv) {
            Ok(cli) => match cli.command {
                crate::Command::Resync(a) => Ok(a),
                other => Err(format!("not resync: {other:?}")),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    fn cursor() -> Cursor {
        Cursor {
            kind: "SyncEntity".into(),
            prefix: Some("rs-".into()),
            tombstones: false,
            at: vec![0, 1, 2, 250, 255],
        }
    }

    #[test]
    fn defaults_are_a_rate_limited_resync_of_the_default_kind_to_per_operation_topics() {
        let a = parse(&[]).expect("no argument is needed");
        assert_eq!(a.kind, sync_core::ingest::limits::DEFAULT_KIND);
        assert_eq!(a.rate, 200.0);
        assert_eq!(a.page_size, 100);
        assert_eq!(a.topic_prefix, topology::EXTERNAL_TOPIC_PREFIX);
        assert!(a.topic.is_none() && !a.dry_run && !a.tombstones && a.resume.is_none());
    }

    #[test]
    fn entity_id_and_prefix_exclude_each_other() {
        let e = parse(&["--entity-id", "a", "--prefix", "b"]).expect_err("refused");
        assert!(e.contains("--entity-id") && e.contains("--prefix"), "{e}");
        let token = cursor().token();
        let e = parse(&["--entity-id", "a", "--resume", &token]).expect_err("refused");
        assert!(e.contains("cannot be used with"), "{e}");
        let e = parse(&["--tombstones", "--topic", "t"]).expect_err("refused");
        assert!(e.contains("cannot be used with"), "{e}");
    }

    #[test]
    fn rates_are_positive_numbers_per_second() {
        assert_eq!(parse_rate("250"), Ok(250.0));
        assert_eq!(parse_rate("12.5/s"), Ok(12.5));
        for bad in ["0", "-3", "fast", "NaN", "inf", "10/m", ""] {
            let e = parse_rate(bad).expect_err(bad);
            assert!(e.contains("not a rate"), "{bad}: {e}");
        }
        let e = parse(&["--rate", "0"]).expect_err("refused");
        assert!(e.contains("--rate") && e.contains("not a rate"), "{e}");
        assert_eq!(parse(&["--rate", "50/s"]).map(|a| a.rate), Ok(50.0));
        assert!(parse(&["--page-size", "0"]).is_err());
        assert!(parse(&["--page-size", "1001"]).is_err());
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_clear_errors() {
        let c = cursor();
        assert_eq!(Cursor::parse(&c.token()), Ok(c.clone()));
        // The whole line is accepted too.
        assert_eq!(
            Cursor::parse(&format!("cursor: {}", c.token())),
            Ok(c.clone())
        );
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for bad in [
            "".to_string(),
            "not base64!".to_string(),
            b64.encode("not json"),
            b64.encode(r#"{"v":2,"kind":"K","prefix":null,"tombstones":false,"at":"AA"}"#),
            b64.encode(r#"{"v":1,"kind":"K","prefix":null,"tombstones":false,"at":""}"#),
            b64.encode(r#"{"v":1,"prefix":null,"tombstones":false,"at":"AA"}"#),
            b64.encode(r#"{"v":1,"kind":"K","prefix":3,"tombstones":false,"at":"AA"}"#),
        ] {
            let e = Cursor::parse(&bad).expect_err(&bad);
            assert!(
                e.contains("not a cursor printed by `syncctl resync`"),
                "{e}"
            );
        }
        let e = parse(&["--resume", "garbage"]).expect_err("refused");
        assert!(e.contains("--resume") && e.contains("not a cursor"), "{e}");
    }

    #[test]
    fn a_cursor_resumes_only_the_scan_it_came_from() {
        let token = cursor().token();
        let same = parse(&["--prefix", "rs-", "--resume", &token]).expect("parses");
        assert!(cursor().check(&same).is_ok());
        for other in [
            vec!["--resume", &token],
            vec!["--prefix", "rs-", "--kind", "Other", "--resume", &token],
            vec!["--prefix", "rs-", "--tombstones", "--resume", &token],
        ] {
            let a = parse(&other).expect("parses");
            let e = cursor().check(&a).expect_err("another scan");
            assert!(e.to_string().contains("not this one"), "{e}");
        }
    }

    #[test]
    fn the_progress_line_is_a_valid_template() {
        assert!(ProgressStyle::with_template(PROGRESS).is_ok());
    }

    #[test]
    fn the_limit_spaces_entities_at_the_rate_after_its_burst() {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let limit = RateLimiter::direct_with_clock(quota(10.0, 3), clock.clone());
        // How long the next entity waits, then that wait passed.
        let wait = || match limit.check() {
            Ok(()) => 0,
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
                clock.advance(wait);
                limit
                    .check()
                    .map(|()| wait.as_millis())
                    .unwrap_or(u128::MAX)
            }
        };
        let ms: Vec<u128> = (0..6).map(|_| wait()).collect();
        assert_eq!(ms, [0, 0, 0, 100, 100, 100]);
        // After a pause no more than the burst is banked.
        clock.advance(Duration::from_secs(10));
        let ms: Vec<u128> = (0..4).map(|_| wait()).collect();
        assert_eq!(ms, [0, 0, 0, 100]);
        let one = RateLimiter::direct_with_clock(quota(4.0, 1), clock.clone());
        assert!(one.check().is_ok());
        let not_until = one.check().expect_err("one at once");
        assert_eq!(
            not_until.wait_time_from(governor::clock::Clock::now(&clock)),
            Duration::from_millis(250)
        );
    }

    /// Tokens printed before the serde struct still resume.
    #[test]
    fn a_token_of_the_first_format_resumes() {
        // `cursor()`'s token as the first `syncctl resync` printed it (its
        // `json!` object: keys sorted, compact), computed apart from it.
        let old = "eyJhdCI6IkFBRUMtdjgiLCJraW5kIjoiU3luY0VudGl0eSIsInByZWZpeCI6InJzLSIsInRvbWJzdG9uZXMiOmZhbHNlLCJ2IjoxfQ";
        assert_eq!(Cursor::parse(old), Ok(cursor()));
        assert_eq!(cursor().token(), old, "printed byte for byte as before");
    }

    /// The resync announcement of a stored version is the sync function's
    /// announcement of it, byte for byte, under a policy whose visible values
    /// are not the newest writes (`max`, `union`), though resync knows no
    /// policy.
    #[test]
    fn the_announcement_of_a_stored_version_is_the_live_one() -> Result<()> {
        let policy = MergePolicy::from_json(r#"{"fields":{"score":"max","tags":"union"}}"#)?;
        let now = chrono::Utc::now();
        let events = [
            (
                "m1",
                "create",
                "2025-07-23T10:00:00",
                json!({"score": 9, "tags": ["a"], "name": "x"}),
            ),
            (
                "m2",
                "update",
                "2025-07-23T10:00:01",
                json!({"score": 3, "tags": ["b"]}),
            ),
        ];
        let mut state = EntityState::default();
        for (id, op, ts, data) in events {
            let body = json!({"entity_id": "e1", "operation": op, "timestamp": ts, "data": data,
                "source": "s", "correlation_id": format!("c-{id}")});
            let event = sync_core::parse_event(
                body.to_string().as_bytes(),
                id,
                &sync_core::ValidationLimits::default(),
                now,
            )?;
            let out = sync_core::merge(&state, &event, &policy);
            let live = out.announcement.clone().context("an effective change")?;
            state = out.state;
            let stored = state.to_stored(&policy)?;
            let again = announcement_of(&stored)?;
            assert_eq!(again, live);
            let live_message = messages::announcement("K", "e1", &live, false);
            let resync = messages::resync_announcement("K", "e1", &again);
            assert_eq!(resync.data, live_message.data);
        }
        assert_eq!(state.version(), 2);
        Ok(())
    }

    #[test]
    fn an_entity_without_bookkeeping_is_announced_as_a_create_of_its_version() -> Result<()> {
        let stored = StoredEntity {
            exists: true,
            fields: serde_json::from_value(json!({"name": "initialization"}))?,
            version: 1,
            ..StoredEntity::default()
        };
        let a = announcement_of(&stored)?;
        assert_eq!((a.operation, a.version), (Operation::Create, 1));
        assert_eq!(a.data, stored.fields);
        assert_eq!(a.correlation_id, None);
        Ok(())
    }
}
