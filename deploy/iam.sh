#!/usr/bin/env bash
# Create the service accounts and grant the project-wide roles, nothing more:
#   sync function    roles/datastore.user       (project)
#   audit function   roles/logging.logWriter    (project)
#   push invoker     no project role; roles/run.invoker on the sync and
#                    audit services only (deploy/services.sh)
# With CAPTURE_KINDS (change capture), two more:
#   capture function no project role; roles/pubsub.publisher on the events
#                    and dead-letter topics only (deploy/pubsub.sh)
#   capture trigger  roles/eventarc.eventReceiver (project: Eventarc grants it
#                    no narrower), roles/run.invoker on the capture service
#                    only (deploy/services.sh); Eventarc's triggers push with it
# Topic- and subscription-level grants are made beside the resources they
# cover (deploy/pubsub.sh). The Pub/Sub service agent may mint OIDC tokens for
# the invoker and trigger accounts only, which push authentication needs in
# projects made before April 2021.
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] deploy/iam.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

# ensure_service_account EMAIL DISPLAY_NAME
ensure_service_account() {
  local email=$1 display=$2
  if exists iam service-accounts describe "${email}" --format='value(email)'; then
    unchanged "service account ${email}"
  else
    gcloud_change iam service-accounts create "${email%%@*}" "--display-name=${display}"
    changed "created service account ${email}"
  fi
}

log "Service accounts and project roles in ${PROJECT_ID}:"
ensure_service_account "${SYNC_SA}" "datastore-sync: sync function"
ensure_service_account "${AUDIT_SA}" "datastore-sync: audit function"
ensure_service_account "${INVOKER_SA}" "datastore-sync: Pub/Sub push invoker"
if ((CAPTURE)); then
  ensure_service_account "${CAPTURE_SA}" "datastore-sync: capture function"
  ensure_service_account "${TRIGGER_SA}" "datastore-sync: capture Eventarc trigger"
fi

ensure_binding projects "${PROJECT_ID}" roles/datastore.user "serviceAccount:${SYNC_SA}"
ensure_binding projects "${PROJECT_ID}" roles/logging.logWriter "serviceAccount:${AUDIT_SA}"
((!CAPTURE)) || ensure_binding projects "${PROJECT_ID}" roles/eventarc.eventReceiver "serviceAccount:${TRIGGER_SA}"

load_pubsub_service_agent
ensure_binding "iam service-accounts" "${INVOKER_SA}" roles/iam.serviceAccountTokenCreator \
  "serviceAccount:${PUBSUB_AGENT}"
if ((CAPTURE)); then
  ensure_binding "iam service-accounts" "${TRIGGER_SA}" roles/iam.serviceAccountTokenCreator \
    "serviceAccount:${PUBSUB_AGENT}"
fi
finish
