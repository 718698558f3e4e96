//! The gRPC client and thin wrappers of the Datastore calls this crate uses.
//!
//! Every call sets `project_id` (and `database_id`), carries the configured
//! timeout, is counted in [`Counters`], and turns a failed status into a
//! classified [`StoreError`].

use crate::config::{ConnectError, StoreConfig};
use crate::counters::{Call, Counters};
use crate::error::from_status;
use gcloud_sdk::google::datastore::v1 as ds;
use gcloud_sdk::google::datastore::v1::datastore_client::DatastoreClient;
use gcloud_sdk::google_cloud_auth::credentials::anonymous;
use gcloud_sdk::{GoogleApi, GoogleAuthMiddleware, RequestTimeouts};
use std::sync::Arc;
use std::time::Duration;
use sync_core::StoreError;

/// Largest response accepted (a lookup of two 1 MiB entities, a query page).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The shared client: cloning is cheap (one HTTP/2 channel, shared auth).
pub(crate) type Api = GoogleApi<DatastoreClient<GoogleAuthMiddleware>>;

fn new_client(service: GoogleAuthMiddleware) -> DatastoreClient<GoogleAuthMiddleware> {
    DatastoreClient::new(service).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// Builds the client: the emulator without credentials, or production with
/// Application Default Credentials (the metadata server on Cloud Run).
pub(crate) async fn connect(config: &StoreConfig) -> Result<Api, ConnectError> {
    let url = config.url();
    let client_error = |message: String, source: gcloud_sdk::error::Error| ConnectError::Client {
        url: url.clone(),
        message,
        source: Some(Box::new(source)),
    };
    // The channel connects eagerly; bound that like any other call.
    let connect_timeout = config.call_timeout.max(Duration::from_secs(1));
    let built = if config.emulator_host.is_some() {
        let anonymous = anonymous::Builder::new().build();
        tokio::time::timeout(
            connect_timeout,
            GoogleApi::from_function_with_credentials(new_client, &url, None, anonymous),
        )
        .await
    } else {
        tokio::time::timeout(
            connect_timeout,
            GoogleApi::from_function(new_client, &url, None),
        )
        .await
    };
    let api = match built {
        Err(_) => {
            return Err(ConnectError::Client {
                url: url.clone(),
                message: format!("no connection within {connect_timeout:?}"),
                source: None,
            })
        }
        Ok(Err(e)) => return Err(client_error(e.to_string(), e)),
        Ok(Ok(api)) => api,
    };
    Ok(api.with_request_timeouts(RequestTimeouts::new().with_total(config.call_timeout)))
}

/// One Datastore database, as the calls need it.
#[derive(Clone)]
pub(crate) struct Rpc {
    pub api: Api,
    pub project_id: String,
    pub database_id: String,
    pub counters: Arc<Counters>,
}

/// How a lookup reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadIn<'a> {
    /// Strongly consistent, outside any transaction.
    Strong,
    /// In this transaction.
    Transaction(&'a [u8]),
    /// In a read-write transaction the lookup begins
    /// (`ReadOptions.new_transaction`), retrying the previous one if named.
    NewTransaction(Option<&'a [u8]>),
}

/// Read-write transaction options; `previous` tells Datastore this retries an
/// aborted transaction, so it can favour it over newcomers.
fn read_write(previous: Option<&[u8]>) -> ds::TransactionOptions {
    ds::TransactionOptions {
        mode: Some(ds::transaction_options::Mode::ReadWrite(
            ds::transaction_options::ReadWrite {
                previous_transaction: previous.map(<[u8]>::to_vec).unwrap_or_default(),
            },
        )),
    }
}

/// What a lookup found, and the transaction it began (empty unless asked to
/// begin one and the server did).
pub(crate) struct Found {
    pub entities: Vec<ds::Entity>,
    pub began: Vec<u8>,
}

impl Rpc {
    pub async fn begin(&self, previous: Option<&[u8]>) -> Result<Vec<u8>, StoreError> {
        let request = ds::BeginTransactionRequest {
            project_id: self.project_id.clone(),
            database_id: self.database_id.clone(),
            transaction_options: Some(read_write(previous)),
            request_options: None,
        };
        self.counters.count(Call::Begin);
        let response = self
            .api
            .get()
            .begin_transaction(request)
            .await
            .map_err(|s| from_status(s, "begin_transaction"))?;
        Ok(response.into_inner().transaction)
    }

    /// Looks `keys` up as `read_in` says, following deferred keys (in the
    /// transaction the first round began, if it began one).
    pub async fn lookup(
        &self,
        keys: Vec<ds::Key>,
        read_in: ReadIn<'_>,
    ) -> Result<Found, StoreError> {
        let mut found = Found {
            entities: Vec::new(),
            began: Vec::new(),
        };
        let mut pending = keys;
        // Datastore defers keys only under load; a few rounds always suffice,
        // and the bound keeps a misbehaving server from looping us forever.
        for _ in 0..16 {
            if pending.is_empty() {
                return Ok(found);
            }
            let request = ds::LookupRequest {
                project_id: self.project_id.clone(),
                database_id: self.database_id.clone(),
                read_options: Self::read_options(read_in, &found.began),
                keys: pending,
                property_mask: None,
                request_options: None,
            };
            let asked = request.keys.len();
            let begins = matches!(read_in, ReadIn::NewTransaction(_)) && found.began.is_empty();
            self.counters.count(if begins {
                Call::LookupBegin
            } else {
                Call::Lookup
            });
            let response = self
                .api
                .get()
                .lookup(request)
                .await
                .map_err(|s| from_status(s, "lookup"))?
                .into_inner();
            self.counters.count_lookup(asked, response.found.len());
            if begins {
                found.began = response.transaction;
            }
            found
                .entities
                .extend(response.found.into_iter().filter_map(|r| r.entity));
            pending = response.deferred;
        }
        Err(StoreError::Unavailable {
            message: "Datastore lookup kept deferring keys".into(),
            source: None,
        })
    }

    /// The read options of one lookup round: a later round of a lookup that
    /// began a transaction reads in it.
    fn read_options(read_in: ReadIn<'_>, began: &[u8]) -> Option<ds::ReadOptions> {
        use ds::read_options::ConsistencyType;
        let consistency = match read_in {
            ReadIn::Strong => return None,
            ReadIn::NewTransaction(_) if !began.is_empty() => {
                ConsistencyType::Transaction(began.to_vec())
            }
            ReadIn::Transaction(t) => ConsistencyType::Transaction(t.to_vec()),
            ReadIn::NewTransaction(previous) => {
                ConsistencyType::NewTransaction(read_write(previous))
            }
        };
        Some(ds::ReadOptions {
            consistency_type: Some(consistency),
        })
    }

    /// Looks one key up (strongly consistent) and returns Datastore's
    /// result for it as is: the entity with its version and times; `None`
    /// when it does not exist.
    pub async fn lookup_result(
        &self,
        key: ds::Key,
    ) -> Result<Option<ds::EntityResult>, StoreError> {
        for _ in 0..16 {
            let request = ds::LookupRequest {
                project_id: self.project_id.clone(),
                database_id: self.database_id.clone(),
                read_options: None,
                keys: vec![key.clone()],
                property_mask: None,
                request_options: None,
            };
            self.counters.count(Call::Lookup);
            let response = self
                .api
                .get()
                .lookup(request)
                .await
                .map_err(|s| from_status(s, "lookup"))?
                .into_inner();
            self.counters.count_lookup(1, response.found.len());
            if response.deferred.is_empty() {
                return Ok(response.found.into_iter().next());
            }
        }
        Err(StoreError::Unavailable {
            message: "Datastore lookup kept deferring the key".into(),
            source: None,
        })
    }

    /// Commits `mutations`, in `transaction` or (when `None`) non-transactionally.
    pub async fn commit(
        &self,
        transaction: Option<Vec<u8>>,
        mutations: Vec<ds::Mutation>,
    ) -> Result<(), StoreError> {
        self.commit_returning(transaction, mutations)
            .await
            .map(drop)
    }

    /// [`commit`](Self::commit), returning Datastore's answer (each
    /// mutation's new version and times, the commit time).
    pub async fn commit_returning(
        &self,
        transaction: Option<Vec<u8>>,
        mutations: Vec<ds::Mutation>,
    ) -> Result<ds::CommitResponse, StoreError> {
        let (mode, selector) = match transaction {
            Some(t) => (
                ds::commit_request::Mode::Transactional,
                Some(ds::commit_request::TransactionSelector::Transaction(t)),
            ),
            None => (ds::commit_request::Mode::NonTransactional, None),
        };
        let deletes = mutations
            .iter()
            .filter(|m| matches!(m.operation, Some(ds::mutation::Operation::Delete(_))))
            .count();
        self.counters
            .count_mutations(mutations.len() - deletes, deletes);
        let request = ds::CommitRequest {
            project_id: self.project_id.clone(),
            database_id: self.database_id.clone(),
            mode: mode as i32,
            mutations,
            request_options: None,
            transaction_selector: selector,
        };
        self.counters.count(Call::Commit);
        Ok(self
            .api
            .get()
            .commit(request)
            .await
            .map_err(|s| from_status(s, "commit"))?
            .into_inner())
    }

    /// Rolls `transaction` back, releasing its locks. Best effort: a failed
    /// rollback only delays the release until the transaction expires.
    pub async fn rollback(&self, transaction: Vec<u8>) {
        let request = ds::RollbackRequest {
            project_id: self.project_id.clone(),
            database_id: self.database_id.clone(),
            transaction,
            request_options: None,
        };
        self.counters.count(Call::Rollback);
        if let Err(status) = self.api.get().rollback(request).await {
            tracing::debug!(error = %from_status(status, "rollback"), "rollback failed");
        }
    }

    /// Runs `query` in `partition` and returns every result, page by page
    /// (`page` results each, as [`Rpc::query_page`] reads them).
    pub async fn query_all(
        &self,
        partition: &ds::PartitionId,
        mut query: ds::Query,
        page: i32,
    ) -> Result<Vec<ds::Entity>, StoreError> {
        let mut out = Vec::new();
        query.limit = Some(page);
        loop {
            let batch = self.query_page(partition, query.clone()).await?;
            out.extend(batch.entities);
            match batch.next {
                Some(cursor) => query.start_cursor = cursor,
                None => return Ok(out),
            }
        }
    }

    /// Runs `query` (its `limit` and `start_cursor` as set) once: one page.
    ///
    /// The page is the last when Datastore says no more, or when a page
    /// stopped by the limit came back short or empty: the emulator always
    /// says `MORE_RESULTS_AFTER_LIMIT`, even on the last page. A page cut
    /// short for another reason (`NOT_FINISHED`: production stops a batch
    /// at a size or time limit) is followed by the next.
    pub async fn query_page(
        &self,
        partition: &ds::PartitionId,
        query: ds::Query,
    ) -> Result<QueryPage, StoreError> {
        use ds::query_result_batch::MoreResultsType;
        let (limit, start) = (query.limit, query.start_cursor.clone());
        let request = ds::RunQueryRequest {
            project_id: self.project_id.clone(),
            database_id: self.database_id.clone(),
            partition_id: Some(partition.clone()),
            read_options: None,
            property_mask: None,
            explain_options: None,
            request_options: None,
            query_type: Some(ds::run_query_request::QueryType::Query(query)),
        };
        let response = self
            .api
            .get()
            .run_query(request)
            .await
            .map_err(|s| from_status(s, "run_query"))?
            .into_inner();
        let Some(batch) = response.batch else {
            return Ok(QueryPage {
                entities: Vec::new(),
                next: None,
            });
        };
        let count = batch.entity_results.len();
        let full = limit.is_none_or(|l| usize::try_from(l).is_ok_and(|l| count >= l));
        let more = match MoreResultsType::try_from(batch.more_results) {
            Ok(MoreResultsType::NoMoreResults) => false,
            // Unless it made no progress at all, which would loop forever.
            Ok(MoreResultsType::NotFinished) => count > 0 || batch.end_cursor != start,
            _ => count > 0 && full,
        };
        Ok(QueryPage {
            entities: batch
                .entity_results
                .into_iter()
                .filter_map(|r| r.entity)
                .collect(),
            next: (more && !batch.end_cursor.is_empty()).then_some(batch.end_cursor),
        })
    }
}

/// One page of a query: its entities, and the cursor the next page starts
/// at (`None` after the last).
pub(crate) struct QueryPage {
    pub entities: Vec<ds::Entity>,
    pub next: Option<Vec<u8>>,
}
