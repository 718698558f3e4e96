#!/usr/bin/env bash
# Deploy the Cloud Run services, private (--no-allow-unauthenticated), each
# with its own service account, and let only the push invoker account call the
# first two, only the capture trigger's account the third.
#   data-sync-processor[-SUFFIX]  sync-function     gen1, 256Mi, 60 s, at most 10 instances, 80 requests each
#   audit-logger[-SUFFIX]         audit-function    gen1, 128Mi, 30 s, at most 5 instances, 80 requests each
#   data-sync-capture[-SUFFIX]    capture-function  gen1, 256Mi, 60 s, at most 10 instances, 80 requests each
#                                 (with CAPTURE_KINDS only)
# Each function gets its memory as MEMORY_LIMIT_MIB and admits requests within
# it by bytes. (EXECUTION_ENVIRONMENT, SYNC_MEMORY_MIB, AUDIT_MEMORY_MIB,
# CAPTURE_MEMORY_MIB, SYNC_CONCURRENCY, AUDIT_CONCURRENCY and
# CAPTURE_CONCURRENCY change them; see deploy/README.md for how they go
# together.) SYNC_NAMESPACE gives the sync function its DATASTORE_NAMESPACE.
# With SCHEMA_HISTORY (a local .json or .toml file), the file is kept in
# Secret Manager (secret datastore-sync-schema-history[-SUFFIX], a new version
# when its content changes), both accounts may read it, and both services
# mount that version as a file and name it in SCHEMA_HISTORY_FILE. Without it,
# the services mount no secret.
# Each gets an HTTP startup probe on /healthz (the sync and capture functions
# answer 200 once their backends have answered their first calls; their probes
# allow 3 times READY_TIMEOUT_SECS) and an HTTP liveness probe on /livez,
# which depends on no backend.
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

# deploy_service NAME INVOKER FLAGS...: deploy NAME with FLAGS unless it
# already has them; INVOKER (an account) may call it.
deploy_service() {
  local name=$1 invoker=$2
  shift 2
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
  ensure_binding "run services" "${name}" roles/run.invoker "serviceAccount:${invoker}" "--region=${REGION}"
}

# ensure_schema_history: the secret holding SCHEMA_HISTORY, a version of it
# with the file's content (the latest deployed one when unchanged), read
# access for both accounts; sets SCHEMA_HISTORY_VERSION.
ensure_schema_history() {
  local digest secret=${SCHEMA_HISTORY_SECRET}
  digest=$(sha256sum <"${SCHEMA_HISTORY}" | cut -c1-40)
  if gcloud_read secrets describe "${secret}" "--format=value(labels.${SCHEMA_DIGEST_LABEL})"; then
    if [[ ${READ} == "${digest}" ]] &&
      gcloud_read secrets describe "${secret}" "--format=value(labels.${SCHEMA_VERSION_LABEL})" &&
      [[ ${READ} =~ ^[0-9]+$ ]]; then
      SCHEMA_HISTORY_VERSION=${READ}
      unchanged "secret ${secret} version ${SCHEMA_HISTORY_VERSION} holds ${SCHEMA_HISTORY}"
    else
      gcloud_change_read "projects/${PROJECT_ID}/secrets/${secret}/versions/NEW" \
        secrets versions add "${secret}" "--data-file=${SCHEMA_HISTORY}" '--format=value(name)'
      SCHEMA_HISTORY_VERSION=${READ##*/}
      [[ ${SCHEMA_HISTORY_VERSION} =~ ^([0-9]+|NEW)$ ]] || die "unexpected secret version '${READ}'"
      gcloud_change secrets update "${secret}" \
        "--update-labels=${SCHEMA_DIGEST_LABEL}=${digest},${SCHEMA_VERSION_LABEL}=${SCHEMA_HISTORY_VERSION,,}"
      changed "added version ${SCHEMA_HISTORY_VERSION} of secret ${secret} from ${SCHEMA_HISTORY}"
    fi
  else
    # A new secret's first version is 1.
    SCHEMA_HISTORY_VERSION=1
    gcloud_change secrets create "${secret}" "--data-file=${SCHEMA_HISTORY}" --replication-policy=automatic \
      "--labels=${SCHEMA_DIGEST_LABEL}=${digest},${SCHEMA_VERSION_LABEL}=${SCHEMA_HISTORY_VERSION}"
    changed "created secret ${secret} (version 1 from ${SCHEMA_HISTORY})"
  fi
  # Cloud Run checks at deploy time that each service's account can read it.
  local account
  for account in "${SYNC_SA}" "${AUDIT_SA}"; do
    ensure_binding secrets "${secret}" roles/secretmanager.secretAccessor "serviceAccount:${account}"
  done
}

# Both binaries log Cloud Logging JSON by default, so no LOG_FORMAT here.
sync_env="GOOGLE_CLOUD_PROJECT=${PROJECT_ID},SYNC_KIND=${ENTITY_KIND}"
sync_env+=",EXTERNAL_TOPIC_PREFIX=${EXTERNAL_TOPIC_PREFIX},DEAD_LETTER_TOPIC=${DLQ_TOPIC}"
sync_env+=",MAX_CLOCK_SKEW_SECS=300,READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS}"
sync_env+=",MEMORY_LIMIT_MIB=${SYNC_MEMORY_MIB}"
[[ -z ${SYNC_NAMESPACE} ]] || sync_env+=",DATASTORE_NAMESPACE=${SYNC_NAMESPACE}"
audit_env="GOOGLE_CLOUD_PROJECT=${PROJECT_ID},MEMORY_LIMIT_MIB=${AUDIT_MEMORY_MIB}"

log "Cloud Run services in ${PROJECT_ID}/${REGION}:"
secrets_flag=--clear-secrets
if [[ -n ${SCHEMA_HISTORY} ]]; then
  ensure_schema_history
  secrets_flag="--set-secrets=${SCHEMA_HISTORY_MOUNT}=${SCHEMA_HISTORY_SECRET}:${SCHEMA_HISTORY_VERSION}"
  sync_env+=",SCHEMA_HISTORY_FILE=${SCHEMA_HISTORY_MOUNT}"
  audit_env+=",SCHEMA_HISTORY_FILE=${SCHEMA_HISTORY_MOUNT}"
fi

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

deploy_service "${SYNC_SERVICE}" "${INVOKER_SA}" \
  "--image=${sync_image}" "--region=${REGION}" "--service-account=${SYNC_SA}" \
  --no-allow-unauthenticated "--execution-environment=${EXECUTION_ENVIRONMENT}" --port=8080 --cpu=1 \
  "--memory=${SYNC_MEMORY_MIB}Mi" --timeout=60s --max-instances=10 "--concurrency=${SYNC_CONCURRENCY}" \
  "--set-env-vars=${sync_env}" "${secrets_flag}" \
  "--startup-probe=${sync_startup}" "--liveness-probe=${liveness}"
deploy_service "${AUDIT_SERVICE}" "${INVOKER_SA}" \
  "--image=${audit_image}" "--region=${REGION}" "--service-account=${AUDIT_SA}" \
  --no-allow-unauthenticated "--execution-environment=${EXECUTION_ENVIRONMENT}" --port=8080 --cpu=1 \
  "--memory=${AUDIT_MEMORY_MIB}Mi" --timeout=30s --max-instances=5 "--concurrency=${AUDIT_CONCURRENCY}" \
  "--set-env-vars=${audit_env}" "${secrets_flag}" \
  "--startup-probe=${audit_startup}" "--liveness-probe=${liveness}"
if ((CAPTURE)); then
  # CAPTURE_KINDS holds commas, gcloud's separator of variables: this list
  # is separated by ';' instead (`gcloud topic escaping`).
  capture_kinds=$(IFS=,; printf '%s' "${CAPTURE_KIND_LIST[*]}")
  capture_env="^;^GOOGLE_CLOUD_PROJECT=${PROJECT_ID};EVENTS_TOPIC=${TOPIC};DEAD_LETTER_TOPIC=${DLQ_TOPIC}"
  capture_env+=";CAPTURE_KINDS=${capture_kinds};SYNC_KIND=${ENTITY_KIND}"
  capture_env+=";READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS};MEMORY_LIMIT_MIB=${CAPTURE_MEMORY_MIB}"
  deploy_service "${CAPTURE_SERVICE}" "${TRIGGER_SA}" \
    "--image=$(image_uri capture)" "--region=${REGION}" "--service-account=${CAPTURE_SA}" \
    --no-allow-unauthenticated "--execution-environment=${EXECUTION_ENVIRONMENT}" --port=8080 --cpu=1 \
    "--memory=${CAPTURE_MEMORY_MIB}Mi" --timeout=60s --max-instances=10 "--concurrency=${CAPTURE_CONCURRENCY}" \
    "--set-env-vars=${capture_env}" --clear-secrets \
    "--startup-probe=${sync_startup}" "--liveness-probe=${liveness}"
fi
finish
