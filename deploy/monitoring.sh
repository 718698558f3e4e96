#!/usr/bin/env bash
# Observability: two log-based metrics of the sync service's entries,
# datastore_sync_conflicts[_SUFFIX] (a counter of entries whose
# jsonPayload.conflicts > 0) and datastore_sync_publish_to_apply[_SUFFIX]
# (deploy/monitoring/lag-metric.json: a distribution of the publish-to-apply
# lag each processed delivery logs, ms, labelled with its delivery attempt);
# the dashboard deploy/monitoring/dashboard.json; two alert policies,
# deploy/monitoring/alert-dead-letters.json (dead-letter backlog above 0 for
# 5 minutes) and deploy/monitoring/alert-lag.json (p99 lag above
# LAG_P99_THRESHOLD_SECS, default 60, for 10 minutes). Each is created only if
# missing (looked up by name); to apply an edited JSON file to an existing
# metric, dashboard or policy, delete it first (or use deploy/down.sh).
# NOTIFICATION_CHANNELS (comma-separated channel ids) is attached to a new
# alert policy. The policy commands need the gcloud alpha component.
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] [LAG_P99_THRESHOLD_SECS=60] deploy/monitoring.sh [--dry-run]

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
  # A number: its placeholder is a JSON string in the template, so that the
  # template is valid JSON too.
  text=${text//'"__LAG_P99_THRESHOLD_MS__"'/"${LAG_P99_THRESHOLD_MS}"}
  text=${text//__LAG_P99_THRESHOLD_SECS__/"${LAG_P99_THRESHOLD_SECS}"}
  text=${text//__LAG_METRIC__/"${LAG_METRIC}"}
  text=${text//__LAG_ALERT_NAME__/"${LAG_ALERT_NAME}"}
  text=${text//__LAG_LOG_MESSAGE__/"${LAG_LOG_MESSAGE}"}
  text=${text//__LAG_LOG_FIELD__/"${LAG_LOG_FIELD}"}
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

# The lag metric: a distribution, so its definition is a file.
lag_metric_file=$(render "${DEPLOY_DIR}/monitoring/lag-metric.json")
dashboard_file=$(render "${DEPLOY_DIR}/monitoring/dashboard.json")
alert_file=$(render "${DEPLOY_DIR}/monitoring/alert-dead-letters.json")
lag_alert_file=$(render "${DEPLOY_DIR}/monitoring/alert-lag.json")
if ((DRY_RUN)); then
  log "  rendered ${lag_metric_file}, ${dashboard_file}, ${alert_file} and ${lag_alert_file} (kept for inspection)"
else
  trap 'rm -f "${lag_metric_file}" "${dashboard_file}" "${alert_file}" "${lag_alert_file}"' EXIT
fi

if exists logging metrics describe "${LAG_METRIC}" --format='value(name)'; then
  unchanged "log-based metric ${LAG_METRIC}"
else
  gcloud_change logging metrics create "${LAG_METRIC}" "--config-from-file=${lag_metric_file}"
  changed "created log-based metric ${LAG_METRIC} (publish-to-apply lag)"
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
policies=${READ}
channels=()
[[ -z ${NOTIFICATION_CHANNELS} ]] || channels=("--notification-channels=${NOTIFICATION_CHANNELS}")
# ensure_policy DISPLAY_NAME FILE [RUNNER]: creates the alert policy in FILE
# unless one is called DISPLAY_NAME. RUNNER (default gcloud_change) runs the
# create.
ensure_policy() {
  READ=${policies}
  if has_display_name "$1"; then
    unchanged "alert policy '$1'"
  else
    "${3:-gcloud_change}" alpha monitoring policies create "--policy-from-file=$2" "${channels[@]}"
    changed "created alert policy '$1'"
  fi
}
ensure_policy "${ALERT_NAME}" "${alert_file}"
# A log-based metric just created may not be known to Monitoring yet, and a
# policy on an unknown metric is refused: retried with backoff.
ensure_policy "${LAG_ALERT_NAME}" "${lag_alert_file}" gcloud_change_retry
finish
