//! Topic and subscription names: an id in the configured project, or a full
//! path; and Pub/Sub's naming rules for a topic ([`check_topic`]), which the
//! functions check their settings with.

use crate::error::PubSubError;

/// `projects/{project}/topics/{topic}` for an id; a full topic path unchanged.
///
/// ```
/// use sync_pubsub::topic_path;
/// assert_eq!(topic_path("p", "t1")?, "projects/p/topics/t1");
/// assert_eq!(topic_path("p", "projects/q/topics/t2")?, "projects/q/topics/t2");
/// # Ok::<(), sync_pubsub::PubSubError>(())
/// ```
///
/// # Errors
/// [`PubSubError::InvalidName`] for an empty name, an id containing `/`, or a
/// path not of the form `projects/P/topics/T`.
pub fn topic_path(project: &str, topic: &str) -> Result<String, PubSubError> {
    resource_path(project, topic, "topic", "topics")
}

/// `projects/{project}/subscriptions/{id}` for an id; a full subscription path unchanged.
///
/// # Errors
/// As [`topic_path`], for `projects/P/subscriptions/S`.
pub fn subscription_path(project: &str, subscription: &str) -> Result<String, PubSubError> {
    resource_path(project, subscription, "subscription", "subscriptions")
}

/// Checks a topic id, or a full `projects/P/topics/T` path, against Pub/Sub's
/// naming rules: 3-255 characters, starting with a letter, letters, digits and
/// `-_.~+%` only, not starting with `goog`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let id = match topic.strip_prefix("projects/") {
        Some(rest) => {
            let mut parts = rest.split('/');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(p), Some("topics"), Some(t), None) if !p.is_empty() => t,
                _ => return Err("expected a topic id or projects/PROJECT/topics/TOPIC".into()),
            }
        }
        None => topic,
    };
    if !(3..=255).contains(&id.len()) {
        return Err("a topic id has 3 to 255 characters".into());
    }
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("a topic id starts with a letter".into());
    }
    if id.starts_with("goog") {
        return Err("a topic id cannot start with `goog`".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~+%".contains(*c)))
    {
        return Err(format!("character {c:?} is not allowed in a topic id"));
    }
    Ok(())
}

fn resource_path(
    project: &str,
    name: &str,
    kind: &'static str,
    collection: &str,
) -> Result<String, PubSubError> {
    let invalid = |reason| PubSubError::InvalidName {
        kind,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some(rest) = name.strip_prefix("projects/") {
        let mut parts = rest.split('/');
        return match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(c), Some(id), None)
                if !p.is_empty() && c == collection && !id.is_empty() =>
            {
                Ok(name.to_string())
            }
            _ => Err(invalid(if kind == "topic" {
                "a path must be projects/PROJECT/topics/TOPIC"
            } else {
                "a path must be projects/PROJECT/subscriptions/SUBSCRIPTION"
            })),
        };
    }
    if name.contains('/') {
        return Err(invalid("an id cannot contain `/`"));
    }
    if project.is_empty() {
        return Err(invalid("no project is configured for a bare id"));
    }
    Ok(format!("projects/{project}/{collection}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths() -> Result<(), PubSubError> {
        assert_eq!(
            topic_path("p", "external-sync-create")?,
            "projects/p/topics/external-sync-create"
        );
        assert_eq!(
            subscription_path("p", "dlq-processor")?,
            "projects/p/subscriptions/dlq-processor"
        );
        assert_eq!(
            subscription_path("p", "projects/x/subscriptions/s")?,
            "projects/x/subscriptions/s"
        );
        Ok(())
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "",
            "a/b",
            "projects/p",
            "projects/p/topics",
            "projects/p/topics/",
            "projects//topics/t",
            "projects/p/subscriptions/s",
            "projects/p/topics/t/x",
        ] {
            assert!(topic_path("p", bad).is_err(), "{bad:?}");
        }
        assert!(subscription_path("p", "projects/p/topics/t").is_err());
        assert!(topic_path("", "t").is_err());
    }

    #[test]
    fn topic_names_follow_pubsub_rules() {
        assert!(check_topic("sync-dead-letters").is_ok());
        assert!(check_topic("projects/p/topics/sync-dead-letters").is_ok());
        for bad in [
            "ab",
            "1abc",
            "goog-x",
            "a b c",
            "projects/p/subscriptions/x",
            "projects//topics/x",
        ] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
