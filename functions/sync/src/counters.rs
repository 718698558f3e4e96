//! What the running function counts: the deliveries it answered (a
//! middleware on `POST`), beside the RPCs of its Datastore store and the
//! messages of its publisher; logged at shutdown and, with
//! `SYNC_DEBUG_ENDPOINTS=true`, served as JSON on `GET /debug/counters`.

use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use sync_pubsub::PubSubPublisher;
use sync_store::DatastoreStore;

/// The path of the debug endpoint.
pub const DEBUG_COUNTERS_PATH: &str = "/debug/counters";

/// `router` with the requests answered on `POST` counted in `deliveries`.
pub(crate) fn count_deliveries(router: Router, deliveries: Arc<AtomicU64>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let count = request.method() == axum::http::Method::POST;
            let deliveries = Arc::clone(&deliveries);
            async move {
                let response = next.run(request).await;
                if count {
                    deliveries.fetch_add(1, Ordering::Relaxed);
                }
                response
            }
        },
    ))
}

/// `router` with `GET /debug/counters` serving `counters`.
pub(crate) fn with_debug_endpoint(router: Router, counters: Counters) -> Router {
    router.route(
        DEBUG_COUNTERS_PATH,
        axum::routing::get(move || {
            let json = counters.json();
            async move { axum::Json(json) }
        }),
    )
}

/// What the app counts, read together.
#[derive(Clone)]
pub(crate) struct Counters {
    pub(crate) store: DatastoreStore,
    pub(crate) publisher: Arc<PubSubPublisher>,
    pub(crate) deliveries: Arc<AtomicU64>,
}

impl Counters {
    /// `deliveries`, the Datastore RPCs and the Pub/Sub messages, and each
    /// per delivery.
    pub(crate) fn json(&self) -> serde_json::Value {
        let deliveries = self.deliveries.load(Ordering::Relaxed);
        let ds = self.store.rpc_counts();
        let ap = self.store.apply_counts();
        let ps = self.publisher.counts();
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let per = |n: u64| {
            if deliveries == 0 {
                serde_json::Value::Null
            } else {
                serde_json::json!(n as f64 / deliveries as f64)
            }
        };
        serde_json::json!({
            "deliveries": deliveries,
            "datastore": {
                "begin_transaction": ds.begin_transaction,
                "lookup": ds.lookup,
                "lookup_began_transaction": ds.lookup_began_transaction,
                "commit": ds.commit,
                "rollback": ds.rollback,
                "total": ds.total(),
                "begins_in_lookup": self.store.begins_in_lookup(),
                "keys_looked_up": ds.keys_looked_up,
                "entities_found": ds.entities_found,
                "entity_writes": ds.entity_writes,
                "entity_deletes": ds.entity_deletes,
            },
            "apply": {
                "applies": ap.applies,
                "transactions": ap.transactions,
                "grouped_events": ap.grouped_events,
                "late_turns": ap.late_turns,
                "conflict_records": ap.conflict_records,
                "until_answered_us": ap.until_answered_us,
                "answered_to_return_us": ap.answered_to_return_us,
                "transaction_us": ap.transaction_us,
            },
            "pubsub": {
                "messages_handed": ps.messages_handed,
                "confirmed": ps.confirmed,
                "failed": ps.failed,
                "batches": "not reported by the client",
            },
            "per_delivery": {
                "datastore_rpcs": per(ds.total()),
                "begin_transaction": per(ds.begin_transaction),
                "lookup": per(ds.lookup),
                "commit": per(ds.commit),
                "rollback": per(ds.rollback),
                "keys_looked_up": per(ds.keys_looked_up),
                "entity_writes": per(ds.entity_writes),
                "entity_deletes": per(ds.entity_deletes),
                "pubsub_messages": per(ps.messages_handed),
            },
        })
    }
}
