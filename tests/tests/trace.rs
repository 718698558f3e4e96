//! One trace id from publisher to consumer, on the emulators: `syncctl
//! publish` starts a trace in the event's `googclient_traceparent`
//! attribute; the sync function (a process logging Cloud Logging JSON) logs
//! under it and passes a child span of it on its announcement; a poison
//! event of the same trace is dead-lettered with it; `syncctl dlq replay`
//! republishes the dead letter (fixed) with it, and its announcement carries
//! it again.

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use std::time::Duration;
use sync_core::wire::trace::TRACEPARENT;
use sync_core::{EventPublisher, OutgoingMessage};
use sync_pubsub::ReceivedMessage;
use sync_testkit::harness::{sync_env, syncctl_async, Clients, FunctionProcess, Topology};
use sync_testkit::{event, poll_until, pull_until, Emulators, TEST_PROJECT};

/// The trace id and parent (span) id of a `traceparent` value.
fn ids(traceparent: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    ensure!(
        parts.len() == 4 && parts[0] == "00" && parts[3] == "01",
        "not a sampled version-00 traceparent: {traceparent:?}"
    );
    Ok((parts[1].to_string(), parts[2].to_string()))
}

/// The trace id and parent id a pulled message carries.
fn carried(m: &ReceivedMessage) -> Result<(String, String)> {
    let tp = m
        .attributes
        .get(TRACEPARENT)
        .with_context(|| format!("{TRACEPARENT} on {:?}", m.attributes))?;
    ids(tp)
}

/// The function's JSON log lines whose message is `message`.
fn log_lines(sync: &FunctionProcess, message: &str) -> Vec<Value> {
    sync.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

/// The one log line `message` logged with `span` as its span id, checked to
/// be in `trace_id`'s trace. Waited for: the function writes the line after
/// its publish returns, so the message can be pulled before it is logged.
async fn logged_in(
    sync: &FunctionProcess,
    message: &str,
    trace_id: &str,
    span: &str,
) -> Result<()> {
    let what = format!("a {message:?} line in span {span}");
    let line = poll_until(Duration::from_secs(10), &what, || async {
        Ok(log_lines(sync, message)
            .into_iter()
            .find(|l| l["logging.googleapis.com/spanId"] == span))
    })
    .await?;
    ensure!(
        line["logging.googleapis.com/trace"]
            == format!("projects/{TEST_PROJECT}/traces/{trace_id}").as_str(),
        "{message:?}: {line}"
    );
    ensure!(
        line["logging.googleapis.com/trace_sampled"] == true,
        "{line}"
    );
    Ok(())
}

#[tokio::test]
async fn one_trace_id_from_publisher_to_consumer_and_replay() -> Result<()> {
    let e = Emulators::shared().await?;
    let c = Clients::connect(&e).await?;
    let t = Topology::new("trace");
    t.create_base(&c.admin).await?;
    let mut env = sync_env(&t, &e);
    env.retain(|(k, _)| k != "LOG_FORMAT");
    env.push(("LOG_FORMAT".into(), "json".into()));
    let sync = FunctionProcess::start("sync-function", env).await?;
    t.subscribe_sync(&c.admin, &sync.url(), 5).await?;
    let pull = |subscription: String| {
        let c = &c;
        async move { pull_until(&c.puller, &subscription, 1, Duration::from_secs(60)).await }
    };

    // A valid event, published by syncctl with a new trace.
    let out = syncctl_async(
        [
            "publish",
            "--topic",
            &t.topic,
            "--entity-id",
            "traced-1",
            "--operation",
            "create",
            "--name",
            "traced",
        ]
        .map(String::from)
        .to_vec(),
        &e,
        &t.namespace,
    )
    .await?;
    let published = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Traceparent: "))
        .with_context(|| format!("no traceparent printed:\n{out}"))?;
    let (trace_id, publisher_span) = ids(published)?;
    ensure!(
        out.contains(&format!("projects/{TEST_PROJECT}/traces/{trace_id}")),
        "the trace is printed for Cloud Logging:\n{out}"
    );

    // A poison event in the same trace, from another publisher span.
    let poison_span = "00f067aa0ba902b7";
    let poison = OutgoingMessage {
        data: b"{not json".to_vec(),
        attributes: [(
            TRACEPARENT.to_string(),
            format!("00-{trace_id}-{poison_span}-01"),
        )]
        .into(),
        ordering_key: None,
    };
    c.publisher.publish(&t.topic, poison).await?;

    // The announcement: same trace, a child span of the function's.
    let context = || format!("function log:\n{}", sync.log_tail(40));
    let announced = pull(t.external_subscription("create"))
        .await
        .with_context(context)?;
    let (announced_trace, announced_parent) = carried(&announced[0])?;
    ensure!(
        announced_trace == trace_id,
        "announcement: {announced_trace}"
    );
    ensure!(
        announced_parent != publisher_span,
        "the function's own span, not the publisher's"
    );
    logged_in(&sync, "event processed", &trace_id, &announced_parent).await?;

    // The dead letter: same trace, the function's span of that delivery.
    // Not acknowledged: replay takes it below.
    let dead = poll_until(Duration::from_secs(60), "a dead letter", || async {
        let pulled = c
            .puller
            .pull(&t.dlq_subscription, 1, Duration::from_secs(1));
        Ok(pulled.await?.into_iter().next())
    })
    .await
    .with_context(context)?;
    ensure!(
        dead.attributes["error_code"] == "invalid_json",
        "{:?}",
        dead.attributes
    );
    let (dead_trace, dead_parent) = carried(&dead)?;
    ensure!(dead_trace == trace_id, "dead letter: {dead_trace}");
    ensure!(dead_parent != poison_span && dead_parent != announced_parent);
    logged_in(&sync, "message dead-lettered", &trace_id, &dead_parent).await?;
    c.puller
        .nack(&t.dlq_subscription, std::slice::from_ref(&dead.ack_id))
        .await?;

    // Replayed with its data fixed: applied and announced in the same trace.
    let fixed = event(
        "traced-2",
        "create",
        &sync_testkit::raw_event::now_timestamp(),
    )
    .source("trace-test")
    .data(serde_json::json!({ "name": "fixed" }))
    .to_bytes();
    let replayed = syncctl_async(
        vec![
            "dlq".into(),
            "replay".into(),
            "--subscription".into(),
            t.dlq_subscription.clone(),
            "--topic".into(),
            t.topic.clone(),
            "--data".into(),
            String::from_utf8(fixed)?,
            "--wait-secs".into(),
            "10".into(),
        ],
        &e,
        &t.namespace,
    )
    .await?;
    ensure!(replayed.contains("replayed "), "{replayed}");
    let again = pull(t.external_subscription("create"))
        .await
        .with_context(context)?;
    ensure!(
        String::from_utf8_lossy(&again[0].data).contains("traced-2"),
        "the replayed event's announcement"
    );
    let (replay_trace, replay_parent) = carried(&again[0])?;
    ensure!(replay_trace == trace_id, "after replay: {replay_trace}");
    logged_in(&sync, "event processed", &trace_id, &replay_parent).await?;
    Ok(())
}
