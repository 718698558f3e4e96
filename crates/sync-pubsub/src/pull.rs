//! Unary pull, ack and nack, for tests and the operator CLI (`syncctl dlq`),
//! on `gcloud-sdk`'s gRPC client: the official crate offers only a streaming
//! subscriber.
//!
//! Every call retries what is transient within the RPC timeout (a pull sent
//! again after a failure waits at least a second, even when its own wait is
//! over: a stream reset is no answer about the messages); all three are safe
//! to repeat, and the emulator drops a stream now and then under load.

use crate::config::PubSubConfig;
use crate::error::{is_transient_code, PubSubError};
use crate::names::subscription_path;
use chrono::{DateTime, Utc};
use gcloud_sdk::google::pubsub::v1::subscriber_client::SubscriberClient;
use gcloud_sdk::google::pubsub::v1::{AcknowledgeRequest, ModifyAckDeadlineRequest, PullRequest};
use gcloud_sdk::tonic::{Code, Request, Status};
use gcloud_sdk::{GoogleApi, GoogleAuthMiddleware, RequestTimeouts};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use sync_core::Classify;

const PRODUCTION_ENDPOINT: &str = "https://pubsub.googleapis.com";
/// Pub/Sub messages carry up to 10 MB of data; tonic's default decode limit is 4 MiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// `Acknowledge` and `ModifyAckDeadline` take at most this many ack ids per call.
const ACK_BATCH: usize = 1000;
/// The pause before a call that failed transiently is sent again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The least a pull sent again after a transient failure waits for messages.
const RETRY_WINDOW: Duration = Duration::from_secs(1);

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Handle for [`PubSubPuller::ack`] / [`PubSubPuller::nack`].
    pub ack_id: String,
    /// Message id.
    pub message_id: String,
    /// Message data.
    pub data: Vec<u8>,
    /// Message attributes.
    pub attributes: BTreeMap<String, String>,
    /// Ordering key, when set (delivered only by ordering-enabled subscriptions).
    pub ordering_key: Option<String>,
    /// When Pub/Sub accepted it.
    pub publish_time: Option<DateTime<Utc>>,
    /// Delivery attempt, when the subscription has a dead-letter policy.
    pub delivery_attempt: Option<i32>,
}

/// A unary pull client.
#[derive(Clone)]
pub struct PubSubPuller {
    project: String,
    api: GoogleApi<SubscriberClient<GoogleAuthMiddleware>>,
    rpc_timeout: Duration,
}

impl std::fmt::Debug for PubSubPuller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubPuller")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl PubSubPuller {
    /// Connects (emulator: plain HTTP/2, anonymous; production: TLS, ADC).
    ///
    /// # Errors
    /// [`PubSubError::Client`] when the channel or credentials cannot be set up.
    pub async fn connect(config: &PubSubConfig) -> Result<Self, PubSubError> {
        let api = match config.emulator_endpoint() {
            Some(endpoint) => {
                GoogleApi::from_function_with_credentials(
                    SubscriberClient::new,
                    endpoint,
                    None,
                    crate::credentials::anonymous_credentials(),
                )
                .await
            }
            None => {
                GoogleApi::from_function(SubscriberClient::new, PRODUCTION_ENDPOINT, None).await
            }
        }
        .map_err(|e| PubSubError::Client {
            client: "subscriber",
            message: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self {
            project: config.project.clone(),
            api,
            rpc_timeout: config.rpc_timeout,
        })
    }

    fn client(&self) -> SubscriberClient<GoogleAuthMiddleware> {
        self.api.get().max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Pulls up to `max_messages`, waiting at most `timeout` for the first
    /// ones; an empty vector means none arrived in time. Pulled messages are
    /// leased for the subscription's ack deadline: [`ack`](Self::ack) them, or
    /// [`nack`](Self::nack) them to make them available again at once.
    ///
    /// # Errors
    /// When the name is invalid or the service fails (other than by running
    /// out of time).
    pub async fn pull(
        &self,
        subscription: &str,
        max_messages: i32,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let path = subscription_path(&self.project, subscription)?;
        let start = Instant::now();
        let deadline = start + timeout;
        // A transient failure says nothing about whether messages are there,
        // so it is retried within the RPC timeout even once the wait is over
        // (a stream reset at the end of a short wait is not an answer).
        let retry_deadline = start + timeout.max(self.rpc_timeout);
        let mut after_failure = false;
        loop {
            let mut remaining = deadline.saturating_duration_since(Instant::now());
            if after_failure {
                remaining = remaining.max(RETRY_WINDOW);
            } else if remaining.is_zero() {
                return Ok(Vec::new());
            }
            let mut request = Request::new(PullRequest {
                subscription: path.clone(),
                max_messages: max_messages.max(1),
                ..Default::default()
            });
            // Sent as grpc-timeout: the server stops holding the call (and
            // stops handing out messages to it) when it expires.
            request
                .extensions_mut()
                .insert(RequestTimeouts::new().with_total(remaining));
            match self.client().pull(request).await {
                Ok(response) => {
                    let messages: Vec<ReceivedMessage> = response
                        .into_inner()
                        .received_messages
                        .into_iter()
                        .map(convert)
                        .collect();
                    // The service may answer early with nothing; keep waiting.
                    if !messages.is_empty() || (after_failure && Instant::now() >= deadline) {
                        return Ok(messages);
                    }
                    after_failure = false;
                }
                Err(status) if status.code() == Code::DeadlineExceeded => return Ok(Vec::new()),
                Err(status) => {
                    let error = status_error("pull", &path, &status);
                    if !retry_after(&error, retry_deadline).await {
                        return Err(error);
                    }
                    after_failure = true;
                }
            }
        }
    }

    /// Acknowledges `ack_ids` (removes the messages from the subscription).
    ///
    /// # Errors
    /// When the service refuses (unknown subscription, for one).
    pub async fn ack(&self, subscription: &str, ack_ids: &[String]) -> Result<(), PubSubError> {
        let path = subscription_path(&self.project, subscription)?;
        for chunk in ack_ids.chunks(ACK_BATCH) {
            self.retrying("acknowledge", &path, |timeout| {
                let mut request = Request::new(AcknowledgeRequest {
                    subscription: path.clone(),
                    ack_ids: chunk.to_vec(),
                });
                request
                    .extensions_mut()
                    .insert(RequestTimeouts::new().with_total(timeout));
                let mut client = self.client();
                async move { client.acknowledge(request).await.map(drop) }
            })
            .await?;
        }
        Ok(())
    }

    /// Releases `ack_ids` for redelivery now (ack deadline 0).
    ///
    /// # Errors
    /// When the service refuses.
    pub async fn nack(&self, subscription: &str, ack_ids: &[String]) -> Result<(), PubSubError> {
        let path = subscription_path(&self.project, subscription)?;
        for chunk in ack_ids.chunks(ACK_BATCH) {
            self.retrying("modify ack deadline", &path, |timeout| {
                let mut request = Request::new(ModifyAckDeadlineRequest {
                    subscription: path.clone(),
                    ack_ids: chunk.to_vec(),
                    ack_deadline_seconds: 0,
                });
                request
                    .extensions_mut()
                    .insert(RequestTimeouts::new().with_total(timeout));
                let mut client = self.client();
                async move { client.modify_ack_deadline(request).await.map(drop) }
            })
            .await?;
        }
        Ok(())
    }

    /// Sends `call` (given the time it may take) until it succeeds, fails
    /// permanently, or the RPC timeout has passed since the first try.
    async fn retrying<F, Fut>(
        &self,
        operation: &'static str,
        path: &str,
        mut call: F,
    ) -> Result<(), PubSubError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = Result<(), Status>>,
    {
        let deadline = Instant::now() + self.rpc_timeout;
        loop {
            let remaining = deadline
                .saturating_duration_since(Instant::now())
                .max(RETRY_PAUSE);
            match call(remaining).await {
                Ok(()) => return Ok(()),
                Err(status) => {
                    let error = status_error(operation, path, &status);
                    if !retry_after(&error, deadline).await {
                        return Err(error);
                    }
                }
            }
        }
    }
}

/// Whether `error` is worth another try before `deadline`; if so, waits the
/// retry pause first.
async fn retry_after(error: &PubSubError, deadline: Instant) -> bool {
    if error.disposition() != sync_core::Disposition::Transient
        || Instant::now() + RETRY_PAUSE >= deadline
    {
        return false;
    }
    tokio::time::sleep(RETRY_PAUSE).await;
    true
}

fn convert(received: gcloud_sdk::google::pubsub::v1::ReceivedMessage) -> ReceivedMessage {
    let message = received.message.unwrap_or_default();
    ReceivedMessage {
        ack_id: received.ack_id,
        message_id: message.message_id,
        data: message.data,
        attributes: message.attributes.into_iter().collect(),
        ordering_key: Some(message.ordering_key).filter(|k| !k.is_empty()),
        publish_time: message
            .publish_time
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))),
        delivery_attempt: Some(received.delivery_attempt).filter(|&n| n > 0),
    }
}

fn status_error(operation: &'static str, resource: &str, status: &Status) -> PubSubError {
    let code = grpc_code_name(status.code());
    match status.code() {
        Code::NotFound => PubSubError::NotFound {
            operation,
            resource: resource.to_string(),
        },
        _ => PubSubError::Rpc {
            operation,
            resource: resource.to_string(),
            code: code.to_string(),
            message: status.message().to_string(),
            transient: is_transient_code(code),
            source: None,
        },
    }
}

/// The canonical name of a gRPC code (`NOT_FOUND`…), as the official client
/// names it in `admin`.
fn grpc_code_name(code: Code) -> &'static str {
    google_cloud_gax::error::rpc::Code::from(code as i32).name()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code) -> PubSubError {
        status_error(
            "pull",
            "projects/p/subscriptions/s",
            &Status::new(code, "m"),
        )
    }

    #[tokio::test]
    async fn transient_failures_are_retried_while_time_remains() {
        let later = Instant::now() + Duration::from_secs(10);
        for code in [Code::Cancelled, Code::Unavailable, Code::Internal] {
            assert!(retry_after(&status(code), later).await, "{code:?}");
        }
    }

    #[tokio::test]
    async fn permanent_failures_and_spent_deadlines_are_not_retried() {
        let later = Instant::now() + Duration::from_secs(10);
        for code in [
            Code::NotFound,
            Code::PermissionDenied,
            Code::InvalidArgument,
        ] {
            assert!(!retry_after(&status(code), later).await, "{code:?}");
        }
        assert!(!retry_after(&status(Code::Cancelled), Instant::now()).await);
    }
}
