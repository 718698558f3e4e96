//! `syncctl setup`: the recipe's topics and subscriptions, created if absent
//! (on the emulator, say).

use super::clients::{admin, Global};
use anyhow::{Context, Result};
use clap::Args;
use std::time::Duration;
use sync_core::wire::topology::{self, Topology};
use sync_pubsub::{AdminOutcome, DeadLetter, PushEndpoint, PushWrapper, SubscriptionConfig};

/// Arguments of `setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Push endpoint of the sync function (e.g. http://127.0.0.1:8081/).
    #[arg(long)]
    pub sync_endpoint: String,
    /// Push endpoint of the audit function.
    #[arg(long)]
    pub audit_endpoint: String,
    /// Suffix appended to every name (`-SUFFIX`), as the recipe's RANDOM_SUFFIX.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Also create a pull subscription on each external-sync topic (`<topic>-sub`).
    #[arg(long)]
    pub external_subscriptions: bool,
    /// Push the bare message data (`pushConfig.noWrapper`) instead of the JSON envelope.
    #[arg(long)]
    pub push_no_wrapper: bool,
    /// With --push-no-wrapper: send the message id, subscription, publish time,
    /// ordering key and attributes as headers (`noWrapper.writeMetadata`).
    #[arg(long, requires = "push_no_wrapper")]
    pub push_no_wrapper_write_metadata: bool,
}

fn report(what: &str, name: &str, outcome: AdminOutcome) {
    let verb = match outcome {
        AdminOutcome::Created => "created",
        AdminOutcome::AlreadyExisted => "exists",
        AdminOutcome::Updated => "updated",
        AdminOutcome::Deleted => "deleted",
        AdminOutcome::AlreadyAbsent => "absent",
    };
    println!("  {what:<13} {name:<32} {verb}");
}

/// Awaits one admin call that creates `name` and reports what it did.
async fn made<E>(
    what: &str,
    name: &str,
    call: impl std::future::Future<Output = Result<AdminOutcome, E>>,
) -> Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let outcome = call
        .await
        .with_context(|| format!("creating {what} {name}"))?;
    report(what, name, outcome);
    Ok(())
}

pub async fn run(g: &Global, a: SetupArgs) -> Result<()> {
    let admin = admin(g).await?;
    let names = Topology::new(a.suffix.as_deref());
    let topic = names.events_topic;
    let dlq = names.dead_letter_topic;
    let day = Duration::from_secs(86_400);
    // The recipe keeps audit messages 14 days and dead letters 30; Pub/Sub
    // allows up to 31, but the emulator refuses anything over 7.
    let on_emulator = g
        .pubsub_emulator_host
        .as_deref()
        .is_some_and(|h| !h.is_empty());
    let retention = |days: u32| {
        if on_emulator {
            (day * days).min(day * 7)
        } else {
            day * days
        }
    };
    println!("Topology in project {}:", admin.project());
    // Not suffixed: the sync function publishes to EXTERNAL_TOPIC_PREFIX + op.
    let externals = names.external_topics;
    for t in [&topic, &dlq].into_iter().chain(&externals) {
        made("topic", t, admin.create_topic(t)).await?;
    }
    // No retry policy on push subscriptions: on the emulator one made failed
    // pushes never come back. Deployments set one (deploy/pubsub.sh).
    let sync_sub = names.sync_subscription;
    let sync_config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(60),
        retention: Some(retention(7)),
        enable_message_ordering: false,
        dead_letter: Some(DeadLetter {
            topic: dlq.clone(),
            max_delivery_attempts: 5,
        }),
        retry: None,
    };
    let wrapper = if a.push_no_wrapper {
        PushWrapper::Unwrapped {
            write_metadata: a.push_no_wrapper_write_metadata,
        }
    } else {
        PushWrapper::Wrapped
    };
    let sync_push = PushEndpoint::new(&a.sync_endpoint).with_wrapper(wrapper);
    let create = admin.create_push_subscription(&sync_sub, &topic, &sync_push, &sync_config);
    made("push sub", &sync_sub, create).await?;
    let audit_sub = names.audit_subscription;
    let audit_config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(30),
        retention: Some(retention(14)),
        ..SubscriptionConfig::default()
    };
    let audit_push = PushEndpoint::new(&a.audit_endpoint).with_wrapper(wrapper);
    let create = admin.create_push_subscription(&audit_sub, &topic, &audit_push, &audit_config);
    made("push sub", &audit_sub, create).await?;
    let dlq_sub = names.dlq_subscription;
    let dlq_config = SubscriptionConfig {
        ack_deadline: Duration::from_secs(60),
        retention: Some(retention(30)),
        ..SubscriptionConfig::default()
    };
    let create = admin.create_pull_subscription(&dlq_sub, &dlq, &dlq_config);
    made("pull sub", &dlq_sub, create).await?;
    if a.external_subscriptions {
        let config = SubscriptionConfig {
            enable_message_ordering: true,
            ..SubscriptionConfig::default()
        };
        for t in &externals {
            let sub = topology::external_subscription(t);
            made(
                "pull sub",
                &sub,
                admin.create_pull_subscription(&sub, t, &config),
            )
            .await?;
        }
    }
    Ok(())
}
