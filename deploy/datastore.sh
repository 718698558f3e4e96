#!/usr/bin/env bash
# Make sure the project has a Firestore database in Datastore mode, and set the
# TTL policy that lets Datastore delete expired tombstones (kind SyncTombstone,
# timestamp property expire_at).
#
# Usage: PROJECT_ID=my-project [DATASTORE_LOCATION=us-central1] deploy/datastore.sh [--dry-run]
# DATASTORE_LOCATION defaults to REGION; it only matters when the database is
# created, and cannot change afterwards.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

log "Datastore in ${PROJECT_ID}:"
if gcloud_read firestore databases describe "--database=${DATASTORE_DATABASE}" --format='value(type)'; then
  [[ ${READ} == DATASTORE_MODE ]] ||
    die "database ${DATASTORE_DATABASE} is ${READ}, not DATASTORE_MODE; datastore-sync needs Firestore in Datastore mode"
  unchanged "database ${DATASTORE_DATABASE} (Datastore mode)"
else
  gcloud_change firestore databases create "--database=${DATASTORE_DATABASE}" \
    "--location=${DATASTORE_LOCATION}" --type=datastore-mode
  changed "created database ${DATASTORE_DATABASE} (Datastore mode, ${DATASTORE_LOCATION})"
fi

ttl_field="/collectionGroups/${TOMBSTONE_KIND}/fields/${TOMBSTONE_TTL_PROPERTY}"
ttl_set=0
if gcloud_read firestore fields ttls list "--collection-group=${TOMBSTONE_KIND}" \
  "--database=${DATASTORE_DATABASE}" --format='value(name,ttlConfig.state)'; then
  while IFS=$'\t' read -r name state; do
    if [[ ${name} == *"${ttl_field}" && ${state} =~ ^(ACTIVE|CREATING)$ ]]; then
      ttl_set=1
    fi
  done <<<"${READ}"
fi
if ((ttl_set)); then
  unchanged "TTL on ${TOMBSTONE_KIND}.${TOMBSTONE_TTL_PROPERTY}"
else
  # --async: the policy takes effect in the background (minutes to hours).
  gcloud_change firestore fields ttls update "${TOMBSTONE_TTL_PROPERTY}" \
    "--collection-group=${TOMBSTONE_KIND}" "--database=${DATASTORE_DATABASE}" --enable-ttl --async
  changed "enabled TTL on ${TOMBSTONE_KIND}.${TOMBSTONE_TTL_PROPERTY}"
fi
finish
