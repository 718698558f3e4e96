#!/usr/bin/env bash
# Enable the Google Cloud APIs datastore-sync uses, those not enabled yet
# (Eventarc too with CAPTURE_KINDS, Secret Manager with SCHEMA_HISTORY).
#
# Usage: PROJECT_ID=my-project deploy/apis.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

APIS=(
  datastore.googleapis.com
  firestore.googleapis.com
  pubsub.googleapis.com
  run.googleapis.com
  cloudbuild.googleapis.com
  artifactregistry.googleapis.com
  iam.googleapis.com
  logging.googleapis.com
  monitoring.googleapis.com
)
# The schema history is kept in Secret Manager (services.sh).
[[ -z ${SCHEMA_HISTORY} ]] || APIS+=(secretmanager.googleapis.com)
# Change capture (CAPTURE_KINDS) routes Datastore's events with Eventarc
# (Google's guide to routing Firestore events to Cloud Run enables both).
((!CAPTURE)) || APIS+=(eventarc.googleapis.com eventarcpublishing.googleapis.com)

log "APIs in ${PROJECT_ID}:"
enabled=''
if gcloud_read services list --enabled --format='value(config.name)'; then
  enabled=${READ}
fi
missing=()
for api in "${APIS[@]}"; do
  if grep -Fxq "${api}" <<<"${enabled}"; then
    unchanged "${api} enabled"
  else
    missing+=("${api}")
  fi
done
if ((${#missing[@]})); then
  gcloud_change services enable "${missing[@]}"
  for api in "${missing[@]}"; do
    changed "enabled ${api}"
  done
fi
finish
