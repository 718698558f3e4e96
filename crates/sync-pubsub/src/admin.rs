//! Idempotent topic and subscription management on the official admin clients
//! (`TopicAdmin`, `SubscriptionAdmin`; HTTP/JSON transport, which the emulator
//! serves on the same port as gRPC), and [`PubSubAdmin::reach_topic`], the
//! cheap first call a function makes before it reports ready.

use crate::config::PubSubConfig;
use crate::error::{is_transient_code, PubSubError};
use crate::names::{subscription_path, topic_path};
use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model;
use std::time::Duration;

/// What an idempotent admin call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// The resource was created.
    Created,
    /// It existed already; its settings were left as they were.
    AlreadyExisted,
    /// It existed with another push endpoint, which was changed.
    Updated,
    /// The resource was deleted.
    Deleted,
    /// There was nothing to delete.
    AlreadyAbsent,
}

impl AdminOutcome {
    /// Whether anything changed (for scripts that report what they did).
    pub fn changed(self) -> bool {
        matches!(self, Self::Created | Self::Updated | Self::Deleted)
    }
}

/// What [`PubSubAdmin::reach_topic`] learnt; each is an authenticated answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicReach {
    /// The topic exists.
    Exists,
    /// The topic does not exist.
    Missing,
    /// The caller may not read the topic (`PERMISSION_DENIED`, as for an
    /// account that may only publish); whether it exists is unknown.
    NotReadable,
}

/// Dead-letter policy of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Topic id or full path.
    pub topic: String,
    /// Delivery attempts before dead-lettering (5–100).
    pub max_delivery_attempts: i32,
}

/// Redelivery backoff of a subscription. Do not set one on emulator push
/// subscriptions: with one, the emulator lost messages whose push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeliveryBackoff {
    /// Shortest wait before redelivery (0–600 s).
    pub minimum: Duration,
    /// Longest wait before redelivery (0–600 s).
    pub maximum: Duration,
}

/// Settings of a new subscription, pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// Ack deadline (10–600 s); for push, also the HTTP timeout of each push.
    pub ack_deadline: Duration,
    /// How long unacked messages are kept; `None` keeps the service default (7 days).
    pub retention: Option<Duration>,
    /// Deliver messages with the same ordering key in order.
    pub enable_message_ordering: bool,
    /// Where messages go after too many failed deliveries.
    pub dead_letter: Option<DeadLetter>,
    /// Redelivery backoff; `None` redelivers as soon as possible.
    pub retry: Option<RedeliveryBackoff>,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            ack_deadline: Duration::from_secs(60),
            retention: None,
            enable_message_ordering: false,
            dead_letter: None,
            retry: None,
        }
    }
}

/// Where a push subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEndpoint {
    /// URL messages are POSTed to.
    pub url: String,
    /// Service account whose OIDC token Pub/Sub attaches (production; the
    /// emulator sends none).
    pub oidc_service_account: Option<String>,
    /// Audience of that token (default: the URL).
    pub oidc_audience: Option<String>,
    /// The body Pub/Sub sends: the JSON envelope, or the bare data.
    pub wrapper: PushWrapper,
}

/// The body of a push (`pushConfig.wrapper`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PushWrapper {
    /// The JSON envelope with base64 data (`pubsubWrapper`, the default).
    #[default]
    Wrapped,
    /// The data itself as the body (`noWrapper`); with `write_metadata` the
    /// message id, subscription, publish time and ordering key come as
    /// `x-goog-pubsub-*` headers and each attribute as a header.
    Unwrapped {
        /// `noWrapper.writeMetadata`.
        write_metadata: bool,
    },
}

impl PushEndpoint {
    /// An endpoint without authentication (emulator, or IAM-free targets),
    /// delivering the wrapped envelope.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            oidc_service_account: None,
            oidc_audience: None,
            wrapper: PushWrapper::Wrapped,
        }
    }

    /// The same endpoint with another body form.
    #[must_use]
    pub fn with_wrapper(mut self, wrapper: PushWrapper) -> Self {
        self.wrapper = wrapper;
        self
    }
}

/// What a subscription looks like, as the service reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// Full path.
    pub name: String,
    /// Full topic path.
    pub topic: String,
    /// Push endpoint, for push subscriptions.
    pub push_endpoint: Option<String>,
    /// The push body form (`Wrapped` for pull subscriptions too).
    pub push_wrapper: PushWrapper,
    /// Ack deadline in seconds.
    pub ack_deadline_seconds: i32,
    /// Message retention.
    pub retention: Option<Duration>,
    /// Whether ordering keys are honoured.
    pub enable_message_ordering: bool,
    /// Dead-letter policy (topic as a full path).
    pub dead_letter: Option<DeadLetter>,
    /// Redelivery backoff.
    pub retry: Option<RedeliveryBackoff>,
}

/// Topic and subscription management, idempotent: creating what exists and
/// deleting what does not are successes.
#[derive(Debug, Clone)]
pub struct PubSubAdmin {
    project: String,
    topics: TopicAdmin,
    subscriptions: SubscriptionAdmin,
}

impl PubSubAdmin {
    /// Creates the admin clients (emulator: anonymous; production: ADC).
    ///
    /// # Errors
    /// [`PubSubError::Client`] when a client cannot be built.
    pub async fn connect(config: &PubSubConfig) -> Result<Self, PubSubError> {
        let client_error = |client: &'static str| {
            move |e: google_cloud_gax::client_builder::Error| PubSubError::Client {
                client,
                message: e.to_string(),
                source: Some(Box::new(e)),
            }
        };
        let mut topics = TopicAdmin::builder().with_attempt_timeout(config.rpc_timeout);
        let mut subscriptions =
            SubscriptionAdmin::builder().with_attempt_timeout(config.rpc_timeout);
        if let Some(endpoint) = config.emulator_endpoint() {
            topics = topics
                .with_endpoint(endpoint.clone())
                .with_credentials(crate::credentials::anonymous_credentials());
            subscriptions = subscriptions
                .with_endpoint(endpoint)
                .with_credentials(crate::credentials::anonymous_credentials());
        }
        Ok(Self {
            project: config.project.clone(),
            topics: topics.build().await.map_err(client_error("topic admin"))?,
            subscriptions: subscriptions
                .build()
                .await
                .map_err(client_error("subscription admin"))?,
        })
    }

    /// The project of bare ids.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Creates `topic` (id or path) unless it exists.
    ///
    /// # Errors
    /// When the name is invalid or the service refuses.
    pub async fn create_topic(&self, topic: &str) -> Result<AdminOutcome, PubSubError> {
        let path = topic_path(&self.project, topic)?;
        match self
            .topics
            .create_topic()
            .set_name(path.clone())
            .send()
            .await
        {
            Ok(_) => Ok(AdminOutcome::Created),
            Err(e) if has_code(&e, Code::AlreadyExists) => Ok(AdminOutcome::AlreadyExisted),
            Err(e) => Err(rpc_error("create topic", &path, e)),
        }
    }

    /// Whether `topic` exists.
    ///
    /// # Errors
    /// When the name is invalid or the service fails.
    pub async fn topic_exists(&self, topic: &str) -> Result<bool, PubSubError> {
        let path = topic_path(&self.project, topic)?;
        match self.topics.get_topic().set_topic(path.clone()).send().await {
            Ok(_) => Ok(true),
            Err(e) if has_code(&e, Code::NotFound) => Ok(false),
            Err(e) => Err(rpc_error("get topic", &path, e)),
        }
    }

    /// One cheap call that proves the endpoint and the credentials: `GetTopic`
    /// of `topic`, which answers whether or not the topic exists, and whether
    /// or not the caller may read it.
    ///
    /// # Errors
    /// When the name is invalid or the call fails otherwise (unauthenticated,
    /// unreachable, unavailable…).
    pub async fn reach_topic(&self, topic: &str) -> Result<TopicReach, PubSubError> {
        let path = topic_path(&self.project, topic)?;
        match self.topics.get_topic().set_topic(path.clone()).send().await {
            Ok(_) => Ok(TopicReach::Exists),
            Err(e) if has_code(&e, Code::NotFound) => Ok(TopicReach::Missing),
            Err(e) if has_code(&e, Code::PermissionDenied) => Ok(TopicReach::NotReadable),
            Err(e) => Err(rpc_error("get topic", &path, e)),
        }
    }

    /// Deletes `topic` if it exists.
    ///
    /// # Errors
    /// When the name is invalid or the service refuses.
    pub async fn delete_topic(&self, topic: &str) -> Result<AdminOutcome, PubSubError> {
        let path = topic_path(&self.project, topic)?;
        match self
            .topics
            .delete_topic()
            .set_topic(path.clone())
            .send()
            .await
        {
            Ok(()) => Ok(AdminOutcome::Deleted),
            Err(e) if has_code(&e, Code::NotFound) => Ok(AdminOutcome::AlreadyAbsent),
            Err(e) => Err(rpc_error("delete topic", &path, e)),
        }
    }

    /// Creates a pull subscription on `topic` unless it exists.
    ///
    /// # Errors
    /// When a name is invalid or the service refuses (e.g. the topic does not exist).
    pub async fn create_pull_subscription(
        &self,
        subscription: &str,
        topic: &str,
        config: &SubscriptionConfig,
    ) -> Result<AdminOutcome, PubSubError> {
        let request = self.subscription_model(subscription, topic, config)?;
        self.create_subscription(request).await
    }

    /// Creates a push subscription on `topic` unless it exists; if it exists
    /// with another push endpoint, the endpoint is changed (other settings of
    /// an existing subscription are left alone: compare with
    /// [`get_subscription`](Self::get_subscription)).
    ///
    /// # Errors
    /// When a name is invalid or the service refuses.
    pub async fn create_push_subscription(
        &self,
        subscription: &str,
        topic: &str,
        endpoint: &PushEndpoint,
        config: &SubscriptionConfig,
    ) -> Result<AdminOutcome, PubSubError> {
        let push = push_config(endpoint);
        let request = self
            .subscription_model(subscription, topic, config)?
            .set_push_config(push.clone());
        let path = request.name.clone();
        match self.create_subscription(request).await? {
            AdminOutcome::AlreadyExisted => {
                let existing = self.get_subscription(&path).await?;
                if existing.push_endpoint.as_deref() == Some(endpoint.url.as_str())
                    && existing.push_wrapper == endpoint.wrapper
                {
                    return Ok(AdminOutcome::AlreadyExisted);
                }
                self.subscriptions
                    .modify_push_config()
                    .set_subscription(path.clone())
                    .set_push_config(push)
                    .send()
                    .await
                    .map_err(|e| rpc_error("modify push config", &path, e))?;
                Ok(AdminOutcome::Updated)
            }
            outcome => Ok(outcome),
        }
    }

    /// The subscription as the service reports it.
    ///
    /// # Errors
    /// [`PubSubError::NotFound`] when it does not exist, or a service error.
    pub async fn get_subscription(
        &self,
        subscription: &str,
    ) -> Result<SubscriptionInfo, PubSubError> {
        let path = subscription_path(&self.project, subscription)?;
        let s = self
            .subscriptions
            .get_subscription()
            .set_subscription(path.clone())
            .send()
            .await
            .map_err(|e| rpc_error("get subscription", &path, e))?;
        Ok(SubscriptionInfo {
            name: s.name,
            topic: s.topic,
            push_wrapper: s.push_config.as_ref().and_then(|p| p.no_wrapper()).map_or(
                PushWrapper::Wrapped,
                |w| PushWrapper::Unwrapped {
                    write_metadata: w.write_metadata,
                },
            ),
            push_endpoint: s
                .push_config
                .map(|p| p.push_endpoint)
                .filter(|url| !url.is_empty()),
            ack_deadline_seconds: s.ack_deadline_seconds,
            retention: s.message_retention_duration.and_then(to_std),
            enable_message_ordering: s.enable_message_ordering,
            dead_letter: s
                .dead_letter_policy
                .filter(|d| !d.dead_letter_topic.is_empty())
                .map(|d| DeadLetter {
                    topic: d.dead_letter_topic,
                    max_delivery_attempts: d.max_delivery_attempts,
                }),
            retry: s.retry_policy.map(|r| RedeliveryBackoff {
                minimum: r.minimum_backoff.and_then(to_std).unwrap_or_default(),
                maximum: r.maximum_backoff.and_then(to_std).unwrap_or_default(),
            }),
        })
    }

    /// Deletes `subscription` if it exists.
    ///
    /// # Errors
    /// When the name is invalid or the service refuses.
    pub async fn delete_subscription(
        &self,
        subscription: &str,
    ) -> Result<AdminOutcome, PubSubError> {
        let path = subscription_path(&self.project, subscription)?;
        match self
            .subscriptions
            .delete_subscription()
            .set_subscription(path.clone())
            .send()
            .await
        {
            Ok(()) => Ok(AdminOutcome::Deleted),
            Err(e) if has_code(&e, Code::NotFound) => Ok(AdminOutcome::AlreadyAbsent),
            Err(e) => Err(rpc_error("delete subscription", &path, e)),
        }
    }

    async fn create_subscription(
        &self,
        request: model::Subscription,
    ) -> Result<AdminOutcome, PubSubError> {
        let path = request.name.clone();
        match self
            .subscriptions
            .create_subscription()
            .with_request(request)
            .send()
            .await
        {
            Ok(_) => Ok(AdminOutcome::Created),
            Err(e) if has_code(&e, Code::AlreadyExists) => Ok(AdminOutcome::AlreadyExisted),
            Err(e) => Err(rpc_error("create subscription", &path, e)),
        }
    }

    fn subscription_model(
        &self,
        subscription: &str,
        topic: &str,
        config: &SubscriptionConfig,
    ) -> Result<model::Subscription, PubSubError> {
        let mut s = model::Subscription::new()
            .set_name(subscription_path(&self.project, subscription)?)
            .set_topic(topic_path(&self.project, topic)?)
            .set_ack_deadline_seconds(clamp_secs(config.ack_deadline))
            .set_enable_message_ordering(config.enable_message_ordering);
        if let Some(retention) = config.retention {
            s = s.set_message_retention_duration(to_wkt(retention));
        }
        if let Some(dead_letter) = &config.dead_letter {
            s = s.set_dead_letter_policy(
                model::DeadLetterPolicy::new()
                    .set_dead_letter_topic(topic_path(&self.project, &dead_letter.topic)?)
                    .set_max_delivery_attempts(dead_letter.max_delivery_attempts),
            );
        }
        if let Some(retry) = config.retry {
            s = s.set_retry_policy(
                model::RetryPolicy::new()
                    .set_minimum_backoff(to_wkt(retry.minimum))
                    .set_maximum_backoff(to_wkt(retry.maximum)),
            );
        }
        Ok(s)
    }
}

fn push_config(endpoint: &PushEndpoint) -> model::PushConfig {
    let mut push = model::PushConfig::new().set_push_endpoint(endpoint.url.clone());
    if let Some(account) = &endpoint.oidc_service_account {
        push = push.set_oidc_token(
            model::push_config::OidcToken::new()
                .set_service_account_email(account.clone())
                .set_audience(endpoint.oidc_audience.clone().unwrap_or_default()),
        );
    }
    if let PushWrapper::Unwrapped { write_metadata } = endpoint.wrapper {
        push = push.set_no_wrapper(
            model::push_config::NoWrapper::new().set_write_metadata(write_metadata),
        );
    }
    push
}

fn clamp_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn to_wkt(d: Duration) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::clamp(i64::try_from(d.as_secs()).unwrap_or(i64::MAX), 0)
}

fn to_std(d: google_cloud_wkt::Duration) -> Option<Duration> {
    Duration::try_from(d).ok()
}

fn has_code(e: &google_cloud_gax::error::Error, code: Code) -> bool {
    e.status().is_some_and(|s| s.code == code)
        || match code {
            // The HTTP transport may surface a bare HTTP status without a parsed body.
            Code::AlreadyExists => e.http_status_code() == Some(409),
            Code::NotFound => e.http_status_code() == Some(404),
            Code::PermissionDenied => e.http_status_code() == Some(403),
            _ => false,
        }
}

/// Classifies a client error.
pub(crate) fn rpc_error(
    operation: &'static str,
    resource: &str,
    e: google_cloud_gax::error::Error,
) -> PubSubError {
    if has_code(&e, Code::NotFound) {
        return PubSubError::NotFound {
            operation,
            resource: resource.to_string(),
        };
    }
    let code = match e.status() {
        Some(status) => status.code.name().to_string(),
        None if e.is_timeout() => Code::DeadlineExceeded.name().to_string(),
        None if e.is_io() || e.is_connect() || e.is_transport() => "TRANSPORT".to_string(),
        None => Code::Unknown.name().to_string(),
    };
    PubSubError::Rpc {
        operation,
        resource: resource.to_string(),
        transient: is_transient_code(&code),
        message: e
            .status()
            .map_or_else(|| e.to_string(), |s| s.message.clone()),
        code,
        source: Some(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_setting_maps_to_no_wrapper() {
        let url = "https://example.invalid/";
        let wrapped = push_config(&PushEndpoint::new(url));
        assert!(wrapped.no_wrapper().is_none());
        for write_metadata in [false, true] {
            let push = push_config(
                &PushEndpoint::new(url).with_wrapper(PushWrapper::Unwrapped { write_metadata }),
            );
            assert_eq!(
                push.no_wrapper().map(|w| w.write_metadata),
                Some(write_metadata)
            );
            assert_eq!(push.push_endpoint, url);
        }
    }
}
