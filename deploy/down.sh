#!/usr/bin/env bash
# Remove what deploy/up.sh created, in dependency order: the capture
# triggers (every Eventarc trigger labelled as this deployment's, in any
# location), Cloud Run services (the capture service too), the schema-history
# secret (with its versions), subscriptions, topics,
# dashboard, alert policies, log-based metrics, project role grants, service
# accounts, Artifact Registry repository (with its images).
# Whatever is already gone is skipped. Kept: the Datastore database, its data
# and the TTL policy; an external-sync-* topic that has subscriptions or other
# publishers (a downstream system or another deployment uses it).
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] deploy/down.sh [--dry-run] [--yes]
# Without --yes it asks for the project id on a terminal, and refuses elsewhere.
# --dry-run plans as if everything existed, and needs no confirmation.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
assume_yes=0
args=()
for arg in "$@"; do
  if [[ ${arg} == --yes ]]; then assume_yes=1; else args+=("${arg}"); fi
done
parse_args "${args[@]}"
init_config
DRY_RUN_ASSUME=present

if ((!DRY_RUN && !assume_yes)); then
  [[ -t 0 ]] || die "refusing to delete without --yes when not run from a terminal"
  read -r -p "Delete datastore-sync (suffix '${SUFFIX}') from project ${PROJECT_ID}? Type the project id: " answer
  [[ ${answer} == "${PROJECT_ID}" ]] || die "not confirmed; nothing deleted"
fi

# delete_if_present WHAT DESCRIBE_ARGS... -- DELETE_ARGS...
delete_if_present() {
  local what=$1
  shift
  local -a describe=()
  while (($#)) && [[ $1 != -- ]]; do
    describe+=("$1")
    shift
  done
  shift
  if exists "${describe[@]}"; then
    gcloud_change "$@"
    changed "deleted ${what}"
  else
    unchanged "${what} already gone"
  fi
}

log "Removing datastore-sync from ${PROJECT_ID}:"
# Capture triggers first: they push to the capture service. Found by label,
# whatever CAPTURE_KINDS says now.
READ=''
gcloud_read eventarc triggers list --location=- \
  "--filter=labels.${CAPTURE_LABEL}=${CAPTURE_LABEL_VALUE}" '--format=value(name)' || true
((!DRY_RUN)) || READ="projects/${PROJECT_ID}/locations/LOCATION/triggers/NAME_OF_EACH_CAPTURE_TRIGGER"
triggers=0
while IFS= read -r trigger; do
  [[ -n ${trigger} ]] || continue
  gcloud_change eventarc triggers delete "${trigger}"
  changed "deleted trigger ${trigger}"
  triggers=$((triggers + 1))
done <<<"${READ}"
((triggers)) || unchanged "no capture trigger"

for service in "${SYNC_SERVICE}" "${AUDIT_SERVICE}" "${CAPTURE_SERVICE}"; do
  delete_if_present "service ${service}" run services describe "${service}" "--region=${REGION}" --format='value(metadata.name)' \
    -- run services delete "${service}" "--region=${REGION}"
done

# Created by services.sh when SCHEMA_HISTORY was set; its name is ours.
delete_if_present "secret ${SCHEMA_HISTORY_SECRET}" secrets describe "${SCHEMA_HISTORY_SECRET}" --format='value(name)' \
  -- secrets delete "${SCHEMA_HISTORY_SECRET}"

for subscription in "${SYNC_SUBSCRIPTION}" "${AUDIT_SUBSCRIPTION}" "${DLQ_SUBSCRIPTION}"; do
  delete_if_present "subscription ${subscription}" pubsub subscriptions describe "${subscription}" --format='value(name)' \
    -- pubsub subscriptions delete "${subscription}"
done

for topic in "${TOPIC}" "${DLQ_TOPIC}"; do
  delete_if_present "topic ${topic}" pubsub topics describe "${topic}" --format='value(name)' \
    -- pubsub topics delete "${topic}"
done
# The external topics are shared: keep one that has subscribers or another
# publisher (a downstream system, another deployment), minus our grant.
for topic in "${EXTERNAL_TOPICS[@]}"; do
  if ! exists pubsub topics describe "${topic}" --format='value(name)'; then
    unchanged "topic ${topic} already gone"
    continue
  fi
  others=''
  if gcloud_read pubsub topics get-iam-policy "${topic}" \
    --flatten='bindings[].members' --format='value(bindings.role,bindings.members)'; then
    others=$(grep -vFx "roles/pubsub.publisher"$'\t'"serviceAccount:${SYNC_SA}" <<<"${READ}" |
      grep -F "roles/pubsub.publisher"$'\t' || true)
  fi
  if gcloud_read pubsub topics list-subscriptions "${topic}" --format='value(.)' && [[ -n ${READ} ]]; then
    others+=$'\n'${READ}
  fi
  if [[ -n ${others} ]]; then
    log "  keeping topic ${topic}, still used by:"
    while IFS= read -r user; do
      [[ -z ${user} ]] || log "      ${user}"
    done <<<"${others}"
    remove_binding "pubsub topics" "${topic}" roles/pubsub.publisher "serviceAccount:${SYNC_SA}"
  else
    gcloud_change pubsub topics delete "${topic}"
    changed "deleted topic ${topic}"
  fi
done

# delete_by_display_name WHAT DISPLAY_NAME GROUP...: monitoring objects have
# generated names; find them by display name.
delete_by_display_name() {
  local what=$1 display_name=$2
  shift 2
  local name display found=0
  READ=''
  gcloud_read "$@" list '--format=value(name,displayName)' || true
  ((!DRY_RUN)) || READ="NAME_OF_THE_${what// /_}"$'\t'"${display_name}"
  while IFS=$'\t' read -r name display; do
    if [[ -n ${name} && ${display} == "${display_name}" ]]; then
      gcloud_change "$@" delete "${name}"
      changed "deleted ${what} '${display_name}' (${name})"
      found=1
    fi
  done <<<"${READ}"
  ((found)) || unchanged "${what} '${display_name}' already gone"
}
delete_by_display_name dashboard "${DASHBOARD_NAME}" monitoring dashboards
for policy in "${ALERT_NAME}" "${LAG_ALERT_NAME}"; do
  delete_by_display_name "alert policy" "${policy}" alpha monitoring policies
done

for metric in "${CONFLICT_METRIC}" "${LAG_METRIC}"; do
  delete_if_present "log-based metric ${metric}" logging metrics describe "${metric}" --format='value(name)' \
    -- logging metrics delete "${metric}"
done

# Project-level grants would otherwise outlive the accounts as deleted:... members.
remove_binding projects "${PROJECT_ID}" roles/datastore.user "serviceAccount:${SYNC_SA}"
remove_binding projects "${PROJECT_ID}" roles/logging.logWriter "serviceAccount:${AUDIT_SA}"
remove_binding projects "${PROJECT_ID}" roles/eventarc.eventReceiver "serviceAccount:${TRIGGER_SA}"
for account in "${SYNC_SA}" "${AUDIT_SA}" "${INVOKER_SA}" "${CAPTURE_SA}" "${TRIGGER_SA}"; do
  delete_if_present "service account ${account}" iam service-accounts describe "${account}" --format='value(email)' \
    -- iam service-accounts delete "${account}"
done

delete_if_present "repository ${AR_REPO}" artifacts repositories describe "${AR_REPO}" "--location=${REGION}" --format='value(name)' \
  -- artifacts repositories delete "${AR_REPO}" "--location=${REGION}"
finish
