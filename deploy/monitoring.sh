#!/usr/bin/env bash
# Observability: the log-based metric datastore_sync_conflicts[_SUFFIX]
# (entries of the sync service whose jsonPayload.conflicts > 0), the dashboard
# deploy/monitoring/dashboard.json and the alert policy
# deploy/monitoring/alert-dead-letters.json (dead-letter backlog above 0 for
# 5 minutes). Each is created only if missing (looked up by name); to apply an
# edited JSON file to an existing dashboard or policy, delete it first (or use
# deploy/down.sh). NOTIFICATION_CHANNELS (comma-separated channel ids) is
# attached to a new alert policy. The policy commands need the gcloud alpha
# component.
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] deploy/monitoring.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

# render TEMPLATE: write TEMPLATE with its __NAME__ placeholders filled to a
# temporary file and print that file's path.
render() {
  local text out
  text=$(<"$1")
  text=${text//__DASHBOARD_NAME__/"${DASHBOARD_NAME}"}
  text=${text//__ALERT_NAME__/"${ALERT_NAME}"}
  text=${text//__TOPIC__/"${TOPIC}"}
  text=${text//__SYNC_SUBSCRIPTION__/"${SYNC_SUBSCRIPTION}"}
  text=${text//__AUDIT_SUBSCRIPTION__/"${AUDIT_SUBSCRIPTION}"}
  text=${text//__DLQ_SUBSCRIPTION__/"${DLQ_SUBSCRIPTION}"}
  text=${text//__DLQ_TOPIC__/"${DLQ_TOPIC}"}
  text=${text//__SYNC_SERVICE__/"${SYNC_SERVICE}"}
  text=${text//__AUDIT_SERVICE__/"${AUDIT_SERVICE}"}
  text=${text//__CONFLICT_METRIC__/"${CONFLICT_METRIC}"}
  if [[ ${text} =~ __[A-Z_]+__ ]]; then
    die "$1: placeholder ${BASH_REMATCH[0]} has no value"
  fi
  out=$(mktemp "${TMPDIR:-/tmp}/datastore-sync-XXXXXX.json")
  printf '%s\n' "${text}" >"${out}"
  printf '%s' "${out}"
}

# has_display_name NAME: whether READ (lines "resource-name<TAB>display name")
# holds NAME; sets FOUND to the resource names.
has_display_name() {
  local name display
  FOUND=()
  while IFS=$'\t' read -r name display; do
    [[ -n ${name} && ${display} == "$1" ]] && FOUND+=("${name}")
  done <<<"${READ}"
  ((${#FOUND[@]} > 0))
}

log "Monitoring in ${PROJECT_ID}:"

# The conflict metric counts the sync service's log entries that report conflicts.
metric_filter="jsonPayload.conflicts>0 AND resource.type=\"cloud_run_revision\""
metric_filter+=" AND resource.labels.service_name=\"${SYNC_SERVICE}\""
if exists logging metrics describe "${CONFLICT_METRIC}" --format='value(name)'; then
  unchanged "log-based metric ${CONFLICT_METRIC}"
else
  gcloud_change logging metrics create "${CONFLICT_METRIC}" \
    "--description=datastore-sync: log entries of ${SYNC_SERVICE} that report merge conflicts" \
    "--log-filter=${metric_filter}"
  changed "created log-based metric ${CONFLICT_METRIC}"
fi

dashboard_file=$(render "${DEPLOY_DIR}/monitoring/dashboard.json")
alert_file=$(render "${DEPLOY_DIR}/monitoring/alert-dead-letters.json")
if ((DRY_RUN)); then
  log "  rendered ${dashboard_file} and ${alert_file} (kept for inspection)"
else
  trap 'rm -f "${dashboard_file}" "${alert_file}"' EXIT
fi

READ=''
gcloud_read monitoring dashboards list '--format=value(name,displayName)' || true
if has_display_name "${DASHBOARD_NAME}"; then
  unchanged "dashboard '${DASHBOARD_NAME}'"
else
  gcloud_change monitoring dashboards create "--config-from-file=${dashboard_file}"
  changed "created dashboard '${DASHBOARD_NAME}'"
fi

READ=''
gcloud_read alpha monitoring policies list '--format=value(name,displayName)' || true
if has_display_name "${ALERT_NAME}"; then
  unchanged "alert policy '${ALERT_NAME}'"
else
  channels=()
  [[ -z ${NOTIFICATION_CHANNELS} ]] || channels=("--notification-channels=${NOTIFICATION_CHANNELS}")
  gcloud_change alpha monitoring policies create "--policy-from-file=${alert_file}" "${channels[@]}"
  changed "created alert policy '${ALERT_NAME}'"
fi
finish
