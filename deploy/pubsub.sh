#!/usr/bin/env bash
# Topics, subscriptions and their resource-level grants (the recipe's steps 1,
# 2 and 8, with push delivery to the Cloud Run services):
#   data-sync-events[-SUFFIX]   the events applications publish
#   sync-processor[-SUFFIX]     push -> data-sync-processor, ack 60 s, kept 7 d,
#                               dead-letter to sync-dead-letters after 5 attempts
#   audit-logger[-SUFFIX]       push -> audit-logger, ack 30 s, kept 14 d
#   sync-dead-letters[-SUFFIX]  with pull subscription dlq-processor, kept 30 d
#   external-sync-create|update|delete   what the sync function announces
# With CAPTURE_KINDS, the capture function's account may publish to the
# events topic and the dead-letter topic (deploy/capture.sh makes its triggers).
# Pushes carry an OIDC token of the invoker account and back off 10 s to 600 s.
# PUSH_NO_WRAPPER=1 [PUSH_WRITE_METADATA=1] makes both push subscriptions
# unwrapped (--push-no-wrapper [--push-no-wrapper-write-metadata]); an update
# passes the whole push configuration again, so setting 0 wraps them again.
# A subscription whose settings already match is left alone (each one is
# labelled with a digest of its settings). Needs deploy/services.sh first.
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] [PUSH_NO_WRAPPER=1 [PUSH_WRITE_METADATA=1]] \
#          deploy/pubsub.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

FINGERPRINT_LABEL=deploy_fingerprint
RETRY_POLICY=(--min-retry-delay=10s --max-retry-delay=600s)

# ensure_subscription NAME TOPIC FLAGS...: create, or update to FLAGS if it differs.
ensure_subscription() {
  local name=$1 topic=$2
  shift 2
  local fp
  fp=$(fingerprint "${topic}" "$@")
  if gcloud_read pubsub subscriptions describe "${name}" \
    "--format=value(labels.${FINGERPRINT_LABEL})"; then
    if [[ ${READ} == "${fp}" ]]; then
      unchanged "subscription ${name}"
    else
      gcloud_change pubsub subscriptions update "${name}" "$@" "--update-labels=${FINGERPRINT_LABEL}=${fp}"
      changed "updated subscription ${name}"
    fi
  else
    gcloud_change pubsub subscriptions create "${name}" "--topic=${topic}" "$@" \
      "--labels=${FINGERPRINT_LABEL}=${fp}"
    changed "created subscription ${name} on ${topic}"
  fi
}

log "Pub/Sub in ${PROJECT_ID}:"
load_pubsub_service_agent
load_service_url "${SYNC_SERVICE}"
sync_url=${SERVICE_URL}
load_service_url "${AUDIT_SERVICE}"
audit_url=${SERVICE_URL}

for topic in "${TOPIC}" "${DLQ_TOPIC}" "${EXTERNAL_TOPICS[@]}"; do
  ensure_topic "${topic}"
done

# The sync function publishes downstream and dead-letters; nothing else.
for topic in "${EXTERNAL_TOPICS[@]}" "${DLQ_TOPIC}"; do
  ensure_binding "pubsub topics" "${topic}" roles/pubsub.publisher "serviceAccount:${SYNC_SA}"
done
# The capture function publishes change events and dead-letters; nothing else.
if ((CAPTURE)); then
  for topic in "${TOPIC}" "${DLQ_TOPIC}"; do
    ensure_binding "pubsub topics" "${topic}" roles/pubsub.publisher "serviceAccount:${CAPTURE_SA}"
  done
fi
# Pub/Sub itself forwards undeliverable messages to the dead-letter topic.
ensure_binding "pubsub topics" "${DLQ_TOPIC}" roles/pubsub.publisher "serviceAccount:${PUBSUB_AGENT}"

ensure_subscription "${DLQ_SUBSCRIPTION}" "${DLQ_TOPIC}" \
  --ack-deadline=60 --message-retention-duration=30d
ensure_subscription "${AUDIT_SUBSCRIPTION}" "${TOPIC}" \
  --ack-deadline=30 --message-retention-duration=14d \
  "--push-endpoint=${audit_url}" "--push-auth-service-account=${INVOKER_SA}" \
  "${PUSH_WRAPPER_FLAGS[@]}" "${RETRY_POLICY[@]}"
ensure_subscription "${SYNC_SUBSCRIPTION}" "${TOPIC}" \
  --ack-deadline=60 --message-retention-duration=7d \
  "--push-endpoint=${sync_url}" "--push-auth-service-account=${INVOKER_SA}" \
  "${PUSH_WRAPPER_FLAGS[@]}" \
  "--dead-letter-topic=${DLQ_TOPIC}" --max-delivery-attempts=5 \
  "${RETRY_POLICY[@]}"
# ... and acknowledges, on the source subscription, what it dead-lettered.
ensure_binding "pubsub subscriptions" "${SYNC_SUBSCRIPTION}" roles/pubsub.subscriber \
  "serviceAccount:${PUBSUB_AGENT}"
finish
