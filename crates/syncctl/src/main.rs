//! `syncctl`: the operator CLI of datastore-sync.
//!
//! The recipe's Python helpers (`data_publisher.py`, `query_datastore.py`,
//! `datastore_init.py`, `cleanup_datastore.py`) as subcommands, plus what an
//! operator of the sync function needs: conflict records, dead-letter
//! inspection and replay, a load generator, and the local topology on the
//! emulators (`setup` creates it, `topology` prints its names for scripts),
//! the publish-to-apply lag percentiles of a local run's log (`lag`, in
//! the library: `syncctl::lag`), the current state announced again for a
//! new downstream consumer (`resync`, paged, resumable, rate-limited), and an
//! application's write with the event Eventarc would deliver for it, for the
//! capture function on the emulators (`capture-write`).
//! Each subcommand is a module of [`commands`] with its arguments and its
//! `run`. Events are built as `sync_core::wire::EventMessage`; names come
//! from `sync_core::wire::topology` and `dead_letter`. The environment is
//! read once, by clap ([`commands::clients::Global`]): `PUBSUB_EMULATOR_HOST`
//! and `DATASTORE_EMULATOR_HOST` point it at the emulators; without them it
//! talks to Google Cloud with Application Default Credentials.

mod commands;

use clap::{Parser, Subcommand};
use commands::clients::Global;
use commands::{capture_write, cleanup, conflicts, dlq, init, lag, load, publish, pull, query};
use commands::{resync, setup};
use commands::{topology, KindArgs};
use std::process::ExitCode;

/// Operate datastore-sync: publish events, inspect Datastore, conflicts and dead letters.
#[derive(Parser, Debug)]
#[command(name = "syncctl", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish one change event (the recipe's data_publisher.py).
    Publish(publish::PublishArgs),
    /// List the entities of a kind (the recipe's query_datastore.py).
    Query(query::QueryArgs),
    /// Write the recipe's initialization entity (datastore_init.py).
    Init(KindArgs),
    /// Delete every entity of a kind, its tombstones and conflict records (cleanup_datastore.py).
    Cleanup(KindArgs),
    /// List conflict records: which value won, which lost, and why.
    Conflicts(conflicts::ConflictsArgs),
    /// Inspect or replay dead-lettered messages.
    Dlq(dlq::DlqArgs),
    /// Pull (and optionally acknowledge) messages from a subscription.
    Pull(pull::PullArgs),
    /// Publish many generated events, for demos and benchmarks.
    Load(load::LoadArgs),
    /// Create the recipe's topics and subscriptions (idempotent), e.g. on the emulator.
    Setup(setup::SetupArgs),
    /// Print the topology's names as `deploy/lib.sh`'s variables (`NAME=value`, bash syntax).
    Topology(topology::TopologyArgs),
    /// Publish-to-apply lag (count, p50, p90, p99, max) from a sync-function log (LOG_FORMAT=json).
    Lag(lag::LagArgs),
    /// Announce the current entities again (resync=true), for a new downstream consumer.
    Resync(resync::ResyncArgs),
    /// Write an entity straight to Datastore, as an application does, and deliver the
    /// event Eventarc would send to the capture function (emulators only: none emits them).
    CaptureWrite(capture_write::CaptureWriteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let g = &cli.global;
        match cli.command {
            Command::Publish(a) => publish::run(g, a).await,
            Command::Query(a) => query::run(g, a).await,
            Command::Init(a) => init::run(g, a).await,
            Command::Cleanup(a) => cleanup::run(g, a).await,
            Command::Conflicts(a) => conflicts::run(g, a).await,
            Command::Dlq(a) => dlq::run(g, a).await,
            Command::Pull(a) => pull::run(g, a).await,
            Command::Load(a) => load::run(g, a).await,
            Command::Setup(a) => setup::run(g, a).await,
            Command::Topology(a) => {
                topology::run(&a);
                Ok(())
            }
            Command::Lag(a) => lag::run(&a),
            Command::Resync(a) => resync::run(g, a).await,
            Command::CaptureWrite(a) => capture_write::run(g, a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", explain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: client errors often repeat their
/// source's text in their own message, which `{:#}` would print again.
fn explain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::explain;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn causes_already_in_a_message_are_not_repeated() {
        let inner = anyhow::anyhow!("connection refused");
        let outer = inner
            .context("publish failed: connection refused")
            .context("publishing to t");
        assert_eq!(
            explain(&outer),
            "publishing to t: publish failed: connection refused"
        );
        let plain = anyhow::anyhow!("a").context("b");
        assert_eq!(explain(&plain), "b: a");
    }

    #[test]
    fn setup_write_metadata_needs_no_wrapper() {
        use clap::Parser as _;
        let base = [
            "syncctl",
            "setup",
            "--sync-endpoint",
            "http://127.0.0.1:1/",
            "--audit-endpoint",
            "http://127.0.0.1:2/",
        ];
        let parse = |extra: &[&str]| {
            super::Cli::try_parse_from(base.iter().chain(extra)).map(|cli| match cli.command {
                super::Command::Setup(a) => (a.push_no_wrapper, a.push_no_wrapper_write_metadata),
                _ => (false, false),
            })
        };
        assert_eq!(parse(&[]).ok(), Some((false, false)));
        assert_eq!(parse(&["--push-no-wrapper"]).ok(), Some((true, false)));
        assert_eq!(
            parse(&["--push-no-wrapper", "--push-no-wrapper-write-metadata"]).ok(),
            Some((true, true))
        );
        assert!(parse(&["--push-no-wrapper-write-metadata"]).is_err());
    }

    /// Names of the variables each program reads, by the section of
    /// `docs/configuration.md` that lists them.
    fn variables_read() -> BTreeMap<&'static str, BTreeSet<String>> {
        use clap::CommandFactory as _;
        fn clap_env(cmd: &clap::Command, out: &mut BTreeSet<String>) {
            for arg in cmd.get_arguments() {
                out.extend(arg.get_env().map(|e| e.to_string_lossy().into_owned()));
            }
            for sub in cmd.get_subcommands() {
                clap_env(sub, out);
            }
        }
        let mut syncctl = BTreeSet::new();
        clap_env(&super::Cli::command(), &mut syncctl);
        // The deploy scripts read their settings as `${NAME:-default}`.
        let mut deploy = BTreeSet::new();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
        for entry in std::fs::read_dir(dir).expect("deploy/") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "sh") {
                let script = std::fs::read_to_string(&path).expect("a script");
                for (_, rest) in script
                    .match_indices("${")
                    .map(|(i, _)| script.split_at(i + 2))
                {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name.starts_with(|c: char| c.is_ascii_uppercase())
                        && rest[name.len()..].starts_with(":-")
                    {
                        deploy.insert(name);
                    }
                }
            }
        }
        let names = |it: &mut dyn Iterator<Item = &'static str>| it.map(String::from).collect();
        BTreeMap::from([
            (
                "sync-function",
                names(&mut sync_function::Config::variables()),
            ),
            (
                "audit-function",
                names(&mut audit_function::AuditConfig::variables()),
            ),
            (
                "capture-function",
                names(&mut capture_function::CaptureConfig::variables()),
            ),
            ("syncctl", syncctl),
            ("deploy scripts", deploy),
        ])
    }

    /// The variables each table of `docs/configuration.md` lists, by section.
    fn variables_documented() -> BTreeMap<String, BTreeSet<String>> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let text = std::fs::read_to_string(path).expect("docs/configuration.md");
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut section = String::new();
        for line in text.lines() {
            if let Some(title) = line.strip_prefix("## ") {
                section = title.trim().to_string();
            } else if let Some(row) = line.strip_prefix("| `") {
                let name = row.split('`').next().unwrap_or_default();
                out.entry(section.clone())
                    .or_default()
                    .insert(name.to_string());
            }
        }
        out
    }

    #[test]
    fn the_configuration_reference_lists_what_each_program_reads() {
        let read = variables_read();
        let documented = variables_documented();
        assert_eq!(
            documented.keys().map(String::as_str).collect::<Vec<_>>(),
            read.keys().copied().collect::<Vec<_>>(),
            "one section per program"
        );
        for (program, names) in &read {
            let listed = &documented[*program];
            let missing: Vec<_> = names.difference(listed).collect();
            let extra: Vec<_> = listed.difference(names).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "docs/configuration.md, {program}: not listed {missing:?}, listed but not read {extra:?}"
            );
        }
        assert!(read["sync-function"].contains(sync_config::GOOGLE_CLOUD_PROJECT));
        assert!(read["capture-function"].contains(sync_config::CAPTURE_KINDS));
        assert!(read["deploy scripts"].contains("PROJECT_ID"));
    }
}
