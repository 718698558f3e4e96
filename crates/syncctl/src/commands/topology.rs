//! `syncctl topology`: the topology's names as `deploy/lib.sh`'s variables.

use clap::Args;
use sync_core::wire::topology::{self, Topology};

/// Arguments of `topology`.
#[derive(Args, Debug)]
pub struct TopologyArgs {
    /// Suffix, as `setup --suffix`.
    #[arg(long)]
    pub suffix: Option<String>,
}

/// `deploy/lib.sh`'s variables for `names`, in bash syntax (lists are arrays).
pub fn topology_vars(names: &Topology) -> Vec<(&'static str, String)> {
    let list = |items: &[String]| format!("({})", items.join(" "));
    vec![
        ("TOPIC", names.events_topic.clone()),
        ("DLQ_TOPIC", names.dead_letter_topic.clone()),
        ("SYNC_SUBSCRIPTION", names.sync_subscription.clone()),
        ("AUDIT_SUBSCRIPTION", names.audit_subscription.clone()),
        ("DLQ_SUBSCRIPTION", names.dlq_subscription.clone()),
        (
            "EXTERNAL_TOPIC_PREFIX",
            topology::EXTERNAL_TOPIC_PREFIX.to_string(),
        ),
        ("EXTERNAL_TOPICS", list(&names.external_topics)),
        (
            "EXTERNAL_SUBSCRIPTIONS",
            list(&names.external_subscriptions()),
        ),
    ]
}

/// Prints [`topology_vars`], one `NAME=value` line each, for a shell to source.
pub fn run(a: &TopologyArgs) {
    for (name, value) in topology_vars(&Topology::new(a.suffix.as_deref())) {
        println!("{name}={value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Variables of `deploy/lib.sh` after `init_config` with `SUFFIX`: each
    /// (name, bash word) of `vars` gives a `name` whose value is the word
    /// expanded.
    fn deploy_vars(suffix: &str, vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/lib.sh");
        let words: Vec<String> = vars
            .iter()
            .map(|(name, word)| format!("{name}=\"{word}\""))
            .collect();
        let script = format!(
            ". '{lib}'; PROJECT_ID=names-check SUFFIX='{suffix}' init_config; printf '%s\\n' {}",
            words.join(" ")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "deploy/lib.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The deploy scripts' names, as `deploy/lib.sh` computes them with
    /// `SUFFIX`.
    fn deploy_names(suffix: &str) -> BTreeMap<String, String> {
        deploy_vars(
            suffix,
            &[
                ("TOPIC", "$TOPIC"),
                ("DLQ_TOPIC", "$DLQ_TOPIC"),
                ("SYNC_SUBSCRIPTION", "$SYNC_SUBSCRIPTION"),
                ("AUDIT_SUBSCRIPTION", "$AUDIT_SUBSCRIPTION"),
                ("DLQ_SUBSCRIPTION", "$DLQ_SUBSCRIPTION"),
                ("EXTERNAL_TOPIC_PREFIX", "$EXTERNAL_TOPIC_PREFIX"),
                ("EXTERNAL_TOPICS", "(${EXTERNAL_TOPICS[*]})"),
            ],
        )
    }

    /// The log-based lag metric of `deploy/` reads the entry and the field
    /// that `syncctl lag` reads.
    #[test]
    fn deploy_scripts_read_the_lag_entry_and_field_syncctl_reads() {
        let vars = deploy_vars(
            "",
            &[
                ("LAG_LOG_MESSAGE", "$LAG_LOG_MESSAGE"),
                ("LAG_LOG_FIELD", "$LAG_LOG_FIELD"),
            ],
        );
        assert_eq!(
            vars.get("LAG_LOG_MESSAGE").map(String::as_str),
            Some(syncctl::lag::PROCESSED_MESSAGE)
        );
        assert_eq!(
            vars.get("LAG_LOG_FIELD").map(String::as_str),
            Some(syncctl::lag::PUBLISH_TO_APPLY_FIELD)
        );
    }

    /// The sync function's own kinds, which `deploy/lib.sh` refuses to
    /// capture, are the core's; the triggers' event type is one the capture
    /// function decodes.
    #[test]
    fn deploy_scripts_name_the_sync_functions_kinds_and_the_event_type_as_the_code() {
        use sync_core::ingest::limits::{
            DEFAULT_CONFLICT_KIND, DEFAULT_KIND, DEFAULT_TOMBSTONE_KIND, PROBE_KIND,
        };
        let vars = deploy_vars(
            "",
            &[
                ("ENTITY_KIND", "$ENTITY_KIND"),
                ("TOMBSTONE_KIND", "$TOMBSTONE_KIND"),
                ("CONFLICT_KIND", "$CONFLICT_KIND"),
                ("PROBE_KIND", "$PROBE_KIND"),
                ("SYNC_OWN_KINDS", "${SYNC_OWN_KINDS[*]}"),
            ],
        );
        let own = sync_capture::OwnKinds::new(DEFAULT_KIND);
        assert_eq!(
            vars["SYNC_OWN_KINDS"]
                .split(' ')
                .collect::<std::collections::BTreeSet<_>>(),
            own.iter().collect(),
        );
        for (name, kind) in [
            ("ENTITY_KIND", DEFAULT_KIND),
            ("TOMBSTONE_KIND", DEFAULT_TOMBSTONE_KIND),
            ("CONFLICT_KIND", DEFAULT_CONFLICT_KIND),
            ("PROBE_KIND", PROBE_KIND),
        ] {
            assert_eq!(vars.get(name).map(String::as_str), Some(kind), "{name}");
        }
        let capture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/capture.sh");
        let script = std::fs::read_to_string(capture).expect("deploy/capture.sh");
        let event_type = script
            .lines()
            .find_map(|l| l.strip_prefix("EVENT_TYPE="))
            .expect("capture.sh sets EVENT_TYPE");
        let parsed = sync_capture::EventType::parse(event_type).expect("a Datastore event type");
        assert_eq!(parsed.change, sync_capture::event::Change::Written);
    }

    /// `deploy/lib.sh`, `syncctl topology` and the wire topology agree.
    #[test]
    fn deploy_scripts_use_the_wire_topology() {
        for suffix in [None, Some("ab12")] {
            let ours = Topology::new(suffix);
            let theirs = deploy_names(suffix.unwrap_or(""));
            let printed: BTreeMap<&str, String> = topology_vars(&ours).into_iter().collect();
            let want = BTreeMap::from(
                [
                    ("TOPIC", ours.events_topic.clone()),
                    ("DLQ_TOPIC", ours.dead_letter_topic.clone()),
                    ("SYNC_SUBSCRIPTION", ours.sync_subscription.clone()),
                    ("AUDIT_SUBSCRIPTION", ours.audit_subscription.clone()),
                    ("DLQ_SUBSCRIPTION", ours.dlq_subscription.clone()),
                    (
                        "EXTERNAL_TOPIC_PREFIX",
                        sync_core::wire::topology::EXTERNAL_TOPIC_PREFIX.to_string(),
                    ),
                    (
                        "EXTERNAL_TOPICS",
                        format!("({})", ours.external_topics.join(" ")),
                    ),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
            assert_eq!(theirs, want, "suffix {suffix:?}");
            for (name, value) in &want {
                assert_eq!(printed.get(name.as_str()), Some(value), "{name}");
            }
            assert_eq!(
                printed["EXTERNAL_SUBSCRIPTIONS"],
                format!("({})", ours.external_subscriptions().join(" "))
            );
        }
    }
}
