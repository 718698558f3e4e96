#!/usr/bin/env bash
# Deploy the two Cloud Run services, private (--no-allow-unauthenticated), each
# with its own service account, and let only the push invoker account call them.
#   data-sync-processor[-SUFFIX]  sync-function   256Mi, 60 s, at most 10 instances, 80 requests each
#   audit-logger[-SUFFIX]         audit-function  128Mi, 30 s, at most 5 instances, 80 requests each
# (SYNC_CONCURRENCY and AUDIT_CONCURRENCY change the requests per instance;
# see deploy/README.md for why 80.)
# Both get an HTTP startup probe on /healthz (the sync function answers 200
# once Datastore and Pub/Sub have answered its first calls; it allows 3 times
# READY_TIMEOUT_SECS) and an HTTP liveness probe on /livez, which depends on
# no backend.
# A service whose deployed configuration (image, account, resources, env)
# already matches is left alone: each deploy labels the service with a digest
# of its configuration.
#
# Usage: PROJECT_ID=my-project [SUFFIX=abc123] [IMAGE_TAG=v1] deploy/services.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

FINGERPRINT_LABEL=deploy_fingerprint

# deploy_service NAME FLAGS...
deploy_service() {
  local name=$1
  shift
  local fp
  fp=$(fingerprint "$@")
  if gcloud_read run services describe "${name}" "--region=${REGION}" \
    "--format=value(metadata.labels.${FINGERPRINT_LABEL})"; then
    if [[ ${READ} == "${fp}" ]]; then
      unchanged "service ${name}"
    else
      gcloud_change run deploy "${name}" "$@" "--update-labels=${FINGERPRINT_LABEL}=${fp}"
      changed "updated service ${name}"
    fi
  else
    gcloud_change run deploy "${name}" "$@" "--update-labels=${FINGERPRINT_LABEL}=${fp}"
    changed "created service ${name}"
  fi
  ensure_binding "run services" "${name}" roles/run.invoker "serviceAccount:${INVOKER_SA}" "--region=${REGION}"
}

# Both binaries log Cloud Logging JSON by default, so no LOG_FORMAT here.
sync_env="GOOGLE_CLOUD_PROJECT=${PROJECT_ID},SYNC_KIND=${ENTITY_KIND}"
sync_env+=",EXTERNAL_TOPIC_PREFIX=${EXTERNAL_TOPIC_PREFIX},DEAD_LETTER_TOPIC=${DLQ_TOPIC}"
sync_env+=",MAX_CLOCK_SKEW_SECS=300,READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS}"
audit_env="GOOGLE_CLOUD_PROJECT=${PROJECT_ID}"

# probe PATH PERIOD_SECS FAILURE_THRESHOLD: an HTTP probe on the container port.
probe() {
  printf 'httpGet.path=%s,httpGet.port=8080,timeoutSeconds=1,periodSeconds=%s,failureThreshold=%s' "$1" "$2" "$3"
}
startup_period=2
sync_startup=$(probe /healthz "${startup_period}" $(((3 * READY_TIMEOUT_SECS + startup_period - 1) / startup_period)))
audit_startup=$(probe /healthz 1 10)
liveness=$(probe /livez 10 3)

sync_image=$(image_uri sync)
audit_image=$(image_uri audit)

log "Cloud Run services in ${PROJECT_ID}/${REGION}:"
deploy_service "${SYNC_SERVICE}" \
  "--image=${sync_image}" "--region=${REGION}" "--service-account=${SYNC_SA}" \
  --no-allow-unauthenticated --port=8080 --cpu=1 "--memory=${SYNC_MEMORY_MIB}Mi" --timeout=60s \
  --max-instances=10 "--concurrency=${SYNC_CONCURRENCY}" "--set-env-vars=${sync_env}" \
  "--startup-probe=${sync_startup}" "--liveness-probe=${liveness}"
deploy_service "${AUDIT_SERVICE}" \
  "--image=${audit_image}" "--region=${REGION}" "--service-account=${AUDIT_SA}" \
  --no-allow-unauthenticated --port=8080 --cpu=1 "--memory=${AUDIT_MEMORY_MIB}Mi" --timeout=30s \
  --max-instances=5 "--concurrency=${AUDIT_CONCURRENCY}" "--set-env-vars=${audit_env}" \
  "--startup-probe=${audit_startup}" "--liveness-probe=${liveness}"
finish
