#!/usr/bin/env bash
# Deploy datastore-sync to a Google Cloud project, or bring a deployment up to
# date. Safe to re-run: each step looks before it changes anything, and a run
# against an up-to-date deployment changes nothing.
#
# Usage: PROJECT_ID=my-project [REGION=us-central1] [SUFFIX=abc123] deploy/up.sh [--dry-run]
#
# Steps, in order (each can also be run on its own):
#   apis.sh        enable the APIs
#   iam.sh         service accounts and their project-wide roles
#   datastore.sh   Datastore-mode database and the tombstone TTL policy
#   images.sh      Artifact Registry repository, images built by Cloud Build
#   services.sh    the schema-history secret (with SCHEMA_HISTORY) and the
#                  two private Cloud Run services
#   pubsub.sh      topics, push subscriptions, dead-letter topic
#   capture.sh     with CAPTURE_KINDS: the Eventarc triggers of the captured
#                  kinds (the capture service is services.sh's)
#   monitoring.sh  conflict and lag metrics, dashboard, dead-letter and lag alerts
# --dry-run prints every gcloud command instead of running it (reads too),
# planning as if nothing existed yet.
# Environment: PROJECT_ID (required), REGION, SUFFIX (appended to resource
# names, e.g. $(openssl rand -hex 3)), IMAGE_TAG, DATASTORE_LOCATION,
# NOTIFICATION_CHANNELS, LAG_P99_THRESHOLD_SECS, EXECUTION_ENVIRONMENT,
# SYNC_MEMORY_MIB, AUDIT_MEMORY_MIB, SYNC_CONCURRENCY, AUDIT_CONCURRENCY,
# READY_TIMEOUT_SECS, PUSH_NO_WRAPPER, PUSH_WRITE_METADATA, SCHEMA_HISTORY,
# SYNC_NAMESPACE, CAPTURE_KINDS, CAPTURE_DATABASE, CAPTURE_NAMESPACE,
# CAPTURE_MEMORY_MIB, CAPTURE_CONCURRENCY (see deploy/README.md).

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config
tag=$(image_tag)

log "Deploying datastore-sync to project ${PROJECT_ID}, region ${REGION}, suffix '${SUFFIX}', image tag ${tag}"
for step in apis iam datastore images services pubsub capture monitoring; do
  log ""
  log "== ${step}"
  IMAGE_TAG=${tag} bash "${DEPLOY_DIR}/${step}.sh" "$@"
done

log ""
log "Publish a test event with:"
log "  syncctl publish --project ${PROJECT_ID} --topic ${TOPIC} --entity-id test-entity-001 --operation create --name 'Test Product'"
