#!/usr/bin/env bash
# Change capture's Eventarc triggers (only with CAPTURE_KINDS; docs/capture.md):
# one trigger per kind in CAPTURE_KINDS, for every change of the kind's root
# entities in CAPTURE_DATABASE ("(default)") and CAPTURE_NAMESPACE
# ("(default)"), delivered to the capture service as protobuf:
#   type=google.cloud.datastore.entity.v1.written, database, namespace,
#   entity path pattern KIND/*, --event-data-content-type=application/protobuf,
#   pushing as the trigger account (datasync-trigger), which may invoke the
#   capture service only (deploy/services.sh) and receive events
#   (deploy/iam.sh).
# A trigger lives in its database's location: the database's region, or for a
# multi-region the Eventarc region Eventarc maps it to (nam5: us-central1,
# eur3: europe-west4); the location is read from the database. Each trigger
# carries the labels datasync_capture=<SUFFIX or "default"> and a digest of its
# settings: a trigger whose settings match is left alone, one that differs is
# updated, and a trigger of this deployment whose kind is no longer in
# CAPTURE_KINDS is deleted. Without CAPTURE_KINDS nothing is changed (down.sh
# removes the triggers). Needs deploy/services.sh first.
#
# Usage: PROJECT_ID=my-project CAPTURE_KINDS=Product,Order [CAPTURE_NAMESPACE=shop] \
#          [SUFFIX=abc123] deploy/capture.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

FINGERPRINT_LABEL=deploy_fingerprint
EVENT_TYPE=google.cloud.datastore.entity.v1.written

if ((!CAPTURE)); then
  log "Change capture is not configured (CAPTURE_KINDS is unset): nothing to do."
  log "  Triggers an earlier run made are left as they are; down.sh removes them."
  finish
  exit 0
fi

log "Change capture in ${PROJECT_ID}: kinds ${CAPTURE_KIND_LIST[*]} of database ${CAPTURE_DATABASE}, namespace ${CAPTURE_NAMESPACE}"
# The database's location decides the triggers'. In a dry run, or when the
# default database is still being created, it is DATASTORE_LOCATION's.
database_location=${DATASTORE_LOCATION}
if gcloud_read firestore databases describe "--database=${CAPTURE_DATABASE}" '--format=value(locationId)' &&
  [[ -n ${READ} ]]; then
  database_location=${READ}
elif [[ ${CAPTURE_DATABASE} != '(default)' && ${DRY_RUN} == 0 ]]; then
  die "database ${CAPTURE_DATABASE} not found: CAPTURE_DATABASE must name an existing Firestore database in Datastore mode"
fi
location=$(trigger_location "${database_location}")
log "  database location ${database_location}: triggers in ${location}"

# ensure_trigger KIND: the trigger of KIND's changes, created or updated to the
# settings below.
ensure_trigger() {
  local kind=$1 name fp
  name=$(trigger_name "${kind}")
  local -a settings=(
    "--destination-run-service=${CAPTURE_SERVICE}" "--destination-run-region=${REGION}"
    "--event-filters=type=${EVENT_TYPE}"
    "--event-filters=database=${CAPTURE_DATABASE}"
    "--event-filters=namespace=${CAPTURE_NAMESPACE}"
    "--event-filters-path-pattern=entity=${kind}/*"
    --event-data-content-type=application/protobuf
    "--service-account=${TRIGGER_SA}"
  )
  fp=$(fingerprint "${location}" "${settings[@]}")
  if gcloud_read eventarc triggers describe "${name}" "--location=${location}" \
    "--format=value(labels.${FINGERPRINT_LABEL})"; then
    if [[ ${READ} == "${fp}" ]]; then
      unchanged "trigger ${name} (${kind})"
    else
      gcloud_change eventarc triggers update "${name}" "--location=${location}" "${settings[@]}" \
        "--update-labels=${CAPTURE_LABEL}=${CAPTURE_LABEL_VALUE},${FINGERPRINT_LABEL}=${fp}"
      changed "updated trigger ${name} (${kind})"
    fi
  else
    gcloud_change eventarc triggers create "${name}" "--location=${location}" "${settings[@]}" \
      "--labels=${CAPTURE_LABEL}=${CAPTURE_LABEL_VALUE},${FINGERPRINT_LABEL}=${fp}"
    changed "created trigger ${name} in ${location} for ${kind}"
  fi
  WANTED+=("projects/${PROJECT_ID}/locations/${location}/triggers/${name}")
}

WANTED=()
for kind in "${CAPTURE_KIND_LIST[@]}"; do
  ensure_trigger "${kind}"
done

# Triggers of this deployment that were not wanted now: a kind dropped from
# CAPTURE_KINDS, or a location that changed.
if gcloud_read eventarc triggers list --location=- \
  "--filter=labels.${CAPTURE_LABEL}=${CAPTURE_LABEL_VALUE}" '--format=value(name)'; then
  while IFS= read -r trigger; do
    [[ -n ${trigger} ]] || continue
    if [[ " ${WANTED[*]} " != *" ${trigger} "* ]]; then
      gcloud_change eventarc triggers delete "${trigger}"
      changed "deleted trigger ${trigger} (its kind is no longer captured)"
    fi
  done <<<"${READ}"
fi
finish
