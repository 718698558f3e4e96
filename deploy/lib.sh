#!/usr/bin/env bash
# Shared by the deploy scripts (sourced, never run): configuration and resource
# names, a runner that honours --dry-run, read helpers that tell "absent" from
# "failed", and the describe-before-change helpers every script uses.
#
# Conventions:
#   gcloud_change ARGS...  a command that changes something; printed, and in
#                          dry-run mode only printed.
#   gcloud_read ARGS...    a read; in dry-run mode printed only, the resource
#                          taken as absent (up) or present (down).
#   changed / unchanged    what each script reports; finish prints the summary.
# Every gcloud command gets --project; changes also get --quiet.

# The names set here are read by the scripts that source this file.
# shellcheck disable=SC2034

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "${DEPLOY_DIR}/.." && pwd)

DRY_RUN=0
# What a dry run assumes about every resource it would read: up.sh plans as if
# nothing existed (absent), down.sh as if everything did (present).
DRY_RUN_ASSUME=absent
CHANGES=()

# Commands are traced on the caller's stdout, also from inside $(...).
exec 3>&1

log() { printf '%s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# usage: print the comment block at the top of the running script.
usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//p}' "$0"
}

# parse_args "$@": the options every script takes.
parse_args() {
  local arg
  for arg in "$@"; do
    case ${arg} in
      --dry-run) DRY_RUN=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown argument '${arg}' (try --help)" ;;
    esac
  done
}

# ---------------------------------------------------------------------------
# Configuration and names: the one place that knows what things are called.

# with_suffix NAME: NAME, or NAME-SUFFIX when SUFFIX is set.
with_suffix() {
  if [[ -n ${SUFFIX} ]]; then
    printf '%s-%s' "$1" "${SUFFIX}"
  else
    printf '%s' "$1"
  fi
}

init_config() {
  PROJECT_ID=${PROJECT_ID:-}
  REGION=${REGION:-us-central1}
  SUFFIX=${SUFFIX:-}
  DATASTORE_LOCATION=${DATASTORE_LOCATION:-${REGION}}
  NOTIFICATION_CHANNELS=${NOTIFICATION_CHANNELS:-}

  [[ -n ${PROJECT_ID} ]] || die "set PROJECT_ID to the Google Cloud project id (e.g. PROJECT_ID=my-project deploy/up.sh)"
  [[ ${PROJECT_ID} =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "PROJECT_ID '${PROJECT_ID}' is not a project id (6-30 of a-z, 0-9, -)"
  [[ ${REGION} =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "REGION '${REGION}' is not a region name such as us-central1"
  [[ -z ${SUFFIX} || ${SUFFIX} =~ ^[a-z0-9]{1,12}$ ]] || die "SUFFIX '${SUFFIX}' must be 1-12 of a-z and 0-9 (e.g. \$(openssl rand -hex 3))"

  # Pub/Sub (the recipe's names).
  TOPIC=$(with_suffix data-sync-events)
  SYNC_SUBSCRIPTION=$(with_suffix sync-processor)
  AUDIT_SUBSCRIPTION=$(with_suffix audit-logger)
  DLQ_TOPIC=$(with_suffix sync-dead-letters)
  DLQ_SUBSCRIPTION=$(with_suffix dlq-processor)
  # Push body form of both push subscriptions (both functions accept each):
  # PUSH_NO_WRAPPER=1 pushes the bare message data (gcloud --push-no-wrapper);
  # PUSH_WRITE_METADATA=1 adds the message id, subscription, publish time,
  # ordering key and attributes as headers (--push-no-wrapper-write-metadata).
  PUSH_NO_WRAPPER=${PUSH_NO_WRAPPER:-0}
  PUSH_WRITE_METADATA=${PUSH_WRITE_METADATA:-0}
  [[ ${PUSH_NO_WRAPPER} =~ ^[01]$ ]] || die "PUSH_NO_WRAPPER '${PUSH_NO_WRAPPER}' must be 0 (JSON envelope) or 1 (bare message data)"
  [[ ${PUSH_WRITE_METADATA} =~ ^[01]$ ]] || die "PUSH_WRITE_METADATA '${PUSH_WRITE_METADATA}' must be 0 or 1 (metadata and attributes as headers)"
  [[ ${PUSH_WRITE_METADATA} == 0 || ${PUSH_NO_WRAPPER} == 1 ]] || die "PUSH_WRITE_METADATA=1 needs PUSH_NO_WRAPPER=1 (a wrapped push carries the metadata already)"
  PUSH_WRAPPER_FLAGS=()
  if [[ ${PUSH_NO_WRAPPER} == 1 ]]; then
    PUSH_WRAPPER_FLAGS+=(--push-no-wrapper)
    [[ ${PUSH_WRITE_METADATA} == 0 ]] || PUSH_WRAPPER_FLAGS+=(--push-no-wrapper-write-metadata)
  fi
  # The sync function publishes to <prefix><operation>; these are not suffixed.
  EXTERNAL_TOPIC_PREFIX=external-sync-
  EXTERNAL_TOPICS=("${EXTERNAL_TOPIC_PREFIX}create" "${EXTERNAL_TOPIC_PREFIX}update" "${EXTERNAL_TOPIC_PREFIX}delete")

  # Cloud Run.
  SYNC_CONCURRENCY=${SYNC_CONCURRENCY:-80}
  AUDIT_CONCURRENCY=${AUDIT_CONCURRENCY:-80}
  [[ ${SYNC_CONCURRENCY} =~ ^[1-9][0-9]{0,3}$ && ${SYNC_CONCURRENCY} -le 1000 ]] || die "SYNC_CONCURRENCY '${SYNC_CONCURRENCY}' must be 1-1000 (requests per instance)"
  [[ ${AUDIT_CONCURRENCY} =~ ^[1-9][0-9]{0,3}$ && ${AUDIT_CONCURRENCY} -le 1000 ]] || die "AUDIT_CONCURRENCY '${AUDIT_CONCURRENCY}' must be 1-1000 (requests per instance)"
  # Execution environment and memory of one instance, chosen together with the
  # concurrency (deploy/README.md, "Memory per instance"): each function gets
  # its service's memory as MEMORY_LIMIT_MIB and admits requests by bytes
  # within it. gen2 needs at least 512 MiB; with one vCPU Cloud Run allows at
  # most 4 GiB.
  EXECUTION_ENVIRONMENT=${EXECUTION_ENVIRONMENT:-gen1}
  [[ ${EXECUTION_ENVIRONMENT} =~ ^gen[12]$ ]] || die "EXECUTION_ENVIRONMENT '${EXECUTION_ENVIRONMENT}' must be gen1 or gen2 (Cloud Run's execution environment)"
  SYNC_MEMORY_MIB=${SYNC_MEMORY_MIB:-256}
  AUDIT_MEMORY_MIB=${AUDIT_MEMORY_MIB:-128}
  CAPTURE_MEMORY_MIB=${CAPTURE_MEMORY_MIB:-256}
  local min_memory=128 name value
  [[ ${EXECUTION_ENVIRONMENT} == gen1 ]] || min_memory=512
  # The capture service's memory matters only when it is deployed.
  for name in SYNC_MEMORY_MIB AUDIT_MEMORY_MIB ${CAPTURE_KINDS:+CAPTURE_MEMORY_MIB}; do
    value=${!name}
    [[ ${value} =~ ^[1-9][0-9]{0,4}$ ]] || die "${name} '${value}' must be a whole number of MiB (the service's memory)"
    ((value >= min_memory)) || die "${name} '${value}' is below ${min_memory} MiB, the least Cloud Run's ${EXECUTION_ENVIRONMENT} environment takes (EXECUTION_ENVIRONMENT=${EXECUTION_ENVIRONMENT})"
    ((value <= 4096)) || die "${name} '${value}' is above 4096 MiB, the most Cloud Run gives an instance of one vCPU"
  done
  # The sync function's bounded start-up wait; its startup probe allows 3 times
  # that (Cloud Run caps periodSeconds x failureThreshold at 240 s).
  READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS:-10}
  [[ ${READY_TIMEOUT_SECS} =~ ^[1-9][0-9]?$ && ${READY_TIMEOUT_SECS} -le 80 ]] || die "READY_TIMEOUT_SECS '${READY_TIMEOUT_SECS}' must be 1-80 (seconds)"
  SYNC_SERVICE=$(with_suffix data-sync-processor)
  AUDIT_SERVICE=$(with_suffix audit-logger)
  CAPTURE_SERVICE=$(with_suffix data-sync-capture)

  # Service accounts (ids are 6-30 characters).
  SYNC_SA="$(with_suffix datasync-sync)@${PROJECT_ID}.iam.gserviceaccount.com"
  AUDIT_SA="$(with_suffix datasync-audit)@${PROJECT_ID}.iam.gserviceaccount.com"
  INVOKER_SA="$(with_suffix datasync-invoker)@${PROJECT_ID}.iam.gserviceaccount.com"
  # Capture (with CAPTURE_KINDS): the capture function's account, and the
  # account its Eventarc triggers push with.
  CAPTURE_SA="$(with_suffix datasync-capture)@${PROJECT_ID}.iam.gserviceaccount.com"
  TRIGGER_SA="$(with_suffix datasync-trigger)@${PROJECT_ID}.iam.gserviceaccount.com"

  # Artifact Registry.
  AR_REPO=$(with_suffix datastore-sync)
  IMAGE_BASE="${REGION}-docker.pkg.dev/${PROJECT_ID}/${AR_REPO}"

  # Datastore.
  DATASTORE_DATABASE='(default)'
  ENTITY_KIND=SyncEntity
  TOMBSTONE_KIND=SyncTombstone
  TOMBSTONE_TTL_PROPERTY=expire_at
  # The sync function's own kinds (sync_core's DEFAULT_KIND,
  # DEFAULT_TOMBSTONE_KIND, DEFAULT_CONFLICT_KIND, PROBE_KIND; a syncctl
  # test checks them), never captured.
  CONFLICT_KIND=SyncConflict
  PROBE_KIND=SyncProbe
  SYNC_OWN_KINDS=("${ENTITY_KIND}" "${TOMBSTONE_KIND}" "${CONFLICT_KIND}" "${PROBE_KIND}")
  # Where the sync function keeps the synced entities: DATASTORE_NAMESPACE of
  # the sync service (the default namespace when empty).
  SYNC_NAMESPACE=${SYNC_NAMESPACE:-}
  [[ -z ${SYNC_NAMESPACE} || ${SYNC_NAMESPACE} =~ ^[A-Za-z0-9._-]{1,100}$ ]] ||
    die "SYNC_NAMESPACE '${SYNC_NAMESPACE}' must be 1-100 of A-Z, a-z, 0-9, '.', '_' and '-' (a Datastore namespace)"

  # Change capture (optional, docs/capture.md): with CAPTURE_KINDS, the
  # capture service and one Eventarc trigger per kind for the changes of
  # that kind in CAPTURE_DATABASE / CAPTURE_NAMESPACE (as Eventarc names
  # them: "(default)" for the defaults).
  CAPTURE_KINDS=${CAPTURE_KINDS:-}
  CAPTURE_DATABASE=${CAPTURE_DATABASE:-(default)}
  CAPTURE_NAMESPACE=${CAPTURE_NAMESPACE:-(default)}
  CAPTURE_CONCURRENCY=${CAPTURE_CONCURRENCY:-80}
  CAPTURE=0
  CAPTURE_KIND_LIST=()
  if [[ -n ${CAPTURE_KINDS} ]]; then
    CAPTURE=1
    local kind own
    IFS=',' read -r -a CAPTURE_KIND_LIST <<<"${CAPTURE_KINDS// /}"
    ((${#CAPTURE_KIND_LIST[@]})) || die "CAPTURE_KINDS '${CAPTURE_KINDS}' names no kind"
    for kind in "${CAPTURE_KIND_LIST[@]}"; do
      # Letters, digits, '_', '.', '-' only: a kind is also a trigger's entity
      # path pattern, where '/', '*' and braces mean something.
      [[ ${kind} =~ ^[A-Za-z][A-Za-z0-9_.-]{0,99}$ ]] ||
        die "CAPTURE_KINDS: '${kind}' is not a kind the deploy scripts capture (1-100 of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter)"
      for own in "${SYNC_OWN_KINDS[@]}"; do
        [[ ${kind} != "${own}" ]] ||
          die "CAPTURE_KINDS names ${kind}, one of the sync function's own kinds (${SYNC_OWN_KINDS[*]}): their changes are its own writes"
      done
    done
    [[ ${CAPTURE_DATABASE} == '(default)' || ${CAPTURE_DATABASE} =~ ^[a-z][a-z0-9-]{2,62}$ ]] ||
      die "CAPTURE_DATABASE '${CAPTURE_DATABASE}' is not a database id ('(default)' or 3-63 of a-z, 0-9, -)"
    [[ ${CAPTURE_NAMESPACE} == '(default)' || ${CAPTURE_NAMESPACE} =~ ^[A-Za-z0-9._-]{1,100}$ ]] ||
      die "CAPTURE_NAMESPACE '${CAPTURE_NAMESPACE}' is not a namespace ('(default)' or 1-100 of A-Z, a-z, 0-9, '.', '_', '-')"
    # The sync function writes each captured kind in its own namespace of the
    # default database: capturing from there would have it overwrite the
    # application's entities with the synced ones.
    if [[ ${CAPTURE_DATABASE} == '(default)' && ${CAPTURE_NAMESPACE} == "${SYNC_NAMESPACE:-(default)}" ]]; then
      die "CAPTURE_NAMESPACE '${CAPTURE_NAMESPACE}' of database (default) is where the sync function writes the synced entities (SYNC_NAMESPACE '${SYNC_NAMESPACE}'): capture from another namespace or database, or set SYNC_NAMESPACE"
    fi
    [[ ${CAPTURE_CONCURRENCY} =~ ^[1-9][0-9]{0,3}$ && ${CAPTURE_CONCURRENCY} -le 1000 ]] || die "CAPTURE_CONCURRENCY '${CAPTURE_CONCURRENCY}' must be 1-1000 (requests per instance)"
  fi
  # Labels every capture trigger of this deployment carries, so that up.sh
  # finds the ones no longer configured and down.sh all of them.
  CAPTURE_LABEL=datasync_capture
  CAPTURE_LABEL_VALUE=${SUFFIX:-default}

  # The schema history (optional): SCHEMA_HISTORY names a local .json or
  # .toml file; services.sh keeps it in Secret Manager and mounts the version
  # holding it in both services at SCHEMA_HISTORY_MOUNT, which their
  # SCHEMA_HISTORY_FILE names.
  SCHEMA_HISTORY=${SCHEMA_HISTORY:-}
  SCHEMA_HISTORY_SECRET=$(with_suffix datastore-sync-schema-history)
  SCHEMA_HISTORY_MOUNT=''
  if [[ -n ${SCHEMA_HISTORY} ]]; then
    [[ -f ${SCHEMA_HISTORY} && -r ${SCHEMA_HISTORY} ]] || die "SCHEMA_HISTORY '${SCHEMA_HISTORY}' is not a readable file"
    [[ ${SCHEMA_HISTORY} =~ \.(json|toml)$ ]] || die "SCHEMA_HISTORY '${SCHEMA_HISTORY}' must end in .json or .toml (the functions read its format from the name)"
    SCHEMA_HISTORY_MOUNT="/etc/datastore-sync/schema-history.${BASH_REMATCH[1]}"
  fi
  # Labels on the secret: a digest of the data of the version deployed, and
  # that version's number.
  SCHEMA_DIGEST_LABEL=deployed_sha256
  SCHEMA_VERSION_LABEL=deployed_version

  # Monitoring.
  if [[ -n ${SUFFIX} ]]; then
    CONFLICT_METRIC="datastore_sync_conflicts_${SUFFIX}"
    LAG_METRIC="datastore_sync_publish_to_apply_${SUFFIX}"
    DASHBOARD_NAME="Datastore Sync Monitoring (${SUFFIX})"
    ALERT_NAME="Datastore Sync dead letters (${SUFFIX})"
    LAG_ALERT_NAME="Datastore Sync publish-to-apply lag (${SUFFIX})"
  else
    CONFLICT_METRIC=datastore_sync_conflicts
    LAG_METRIC=datastore_sync_publish_to_apply
    DASHBOARD_NAME="Datastore Sync Monitoring"
    ALERT_NAME="Datastore Sync dead letters"
    LAG_ALERT_NAME="Datastore Sync publish-to-apply lag"
  fi
  # The sync function's log line per processed delivery and its latency
  # field (ms from Pub/Sub's publish time to the end of processing): the
  # function's `publish_to_apply_ms`, camelCased by its JSON log writer.
  # syncctl::lag reads the same names (PROCESSED_MESSAGE,
  # PUBLISH_TO_APPLY_FIELD); a syncctl test checks that they agree.
  LAG_LOG_MESSAGE="event processed"
  LAG_LOG_FIELD=publishToApplyMs
  # The lag alert fires when p99 stays above this for 10 minutes. The
  # metric's buckets end near 1 h, so higher thresholds could not be told.
  LAG_P99_THRESHOLD_SECS=${LAG_P99_THRESHOLD_SECS:-60}
  [[ ${LAG_P99_THRESHOLD_SECS} =~ ^[1-9][0-9]{0,3}$ && ${LAG_P99_THRESHOLD_SECS} -le 3600 ]] ||
    die "LAG_P99_THRESHOLD_SECS '${LAG_P99_THRESHOLD_SECS}' must be a whole number of seconds, 1-3600 (p99 publish-to-apply lag that alerts)"
  LAG_P99_THRESHOLD_MS=$((LAG_P99_THRESHOLD_SECS * 1000))
}

# image_tag: IMAGE_TAG if set; else the commit, plus a hash of uncommitted
# changes to the build inputs, so the same sources always give the same tag.
image_tag() {
  if [[ -n ${IMAGE_TAG:-} ]]; then
    [[ ${IMAGE_TAG} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG '${IMAGE_TAG}' is not a valid image tag"
    printf '%s' "${IMAGE_TAG}"
    return
  fi
  local commit dirty
  commit=$(git -C "${REPO_ROOT}" rev-parse --short=12 HEAD 2>/dev/null) ||
    die "${REPO_ROOT} is not a git checkout with a commit: set IMAGE_TAG"
  local -a inputs=(Dockerfile .dockerignore Cargo.toml Cargo.lock crates functions tests)
  dirty=$(
    cd "${REPO_ROOT}" &&
      {
        git diff HEAD --binary -- "${inputs[@]}"
        git ls-files --others --exclude-standard -z -- "${inputs[@]}" |
          sort -z | xargs -0 --no-run-if-empty sha256sum
      } | sha256sum | cut -c1-8
  )
  if [[ -n $(cd "${REPO_ROOT}" && git status --porcelain -- "${inputs[@]}") ]]; then
    printf '%s-dirty-%s' "${commit}" "${dirty}"
  else
    printf '%s' "${commit}"
  fi
}

# image_uri FUNCTION: where the image for sync or audit lives.
image_uri() {
  printf '%s/%s-function:%s' "${IMAGE_BASE}" "$1" "$(image_tag)"
}

# ---------------------------------------------------------------------------
# Running gcloud.

# quote_cmd ARGS...: the command as one line that can be pasted into a shell.
quote_cmd() {
  local out='' arg q="'"
  for arg in "$@"; do
    if [[ ${arg} =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
      out+=" ${arg}"
    else
      out+=" '${arg//${q}/${q}\\${q}${q}}'"
    fi
  done
  printf '%s' "${out# }"
}

# gcloud_change ARGS...: run `gcloud ARGS` (a change); in dry-run only print it.
gcloud_change() {
  local -a cmd=(gcloud "$@" "--project=${PROJECT_ID}" --quiet)
  if ((DRY_RUN)); then
    printf '[dry-run] %s\n' "$(quote_cmd "${cmd[@]}")" >&3
    return 0
  fi
  printf '+ %s\n' "$(quote_cmd "${cmd[@]}")" >&3
  "${cmd[@]}"
}

# gcloud_change_read PLACEHOLDER ARGS...: a change whose output later
# commands need, kept in READ; in dry-run mode only printed, READ being
# PLACEHOLDER.
gcloud_change_read() {
  local placeholder=$1
  shift
  local -a cmd=(gcloud "$@" "--project=${PROJECT_ID}" --quiet)
  if ((DRY_RUN)); then
    printf '[dry-run] %s\n' "$(quote_cmd "${cmd[@]}")" >&3
    READ=${placeholder}
    return 0
  fi
  printf '+ %s\n' "$(quote_cmd "${cmd[@]}")" >&3
  READ=$("${cmd[@]}")
}

# gcloud_change_retry ARGS...: gcloud_change, retried with backoff. For IAM
# bindings, which fail for a while after the account they name is created.
gcloud_change_retry() {
  local attempt delay=2
  for attempt in 1 2 3 4 5; do
    if gcloud_change "$@"; then
      return 0
    fi
    ((attempt < 5)) || break
    log "retrying in ${delay}s (attempt ${attempt} of 5 failed)"
    sleep "${delay}"
    delay=$((delay * 2))
  done
  die "gave up after 5 attempts: gcloud $*"
}

# gcloud_read ARGS...: run `gcloud ARGS` (a read) and keep its output in READ.
# Returns 1 when the resource does not exist; exits on any other failure, so a
# missing permission is never mistaken for a missing resource. In dry-run mode
# prints the command, leaves READ empty and answers per DRY_RUN_ASSUME.
# (The output goes to a variable, not stdout, so that exiting here ends the
# script rather than a command substitution.)
READ=''
gcloud_read() {
  local -a cmd=(gcloud "$@" "--project=${PROJECT_ID}")
  READ=''
  if ((DRY_RUN)); then
    printf '[dry-run] %s\n' "$(quote_cmd "${cmd[@]}")" >&3
    [[ ${DRY_RUN_ASSUME} == present ]]
    return
  fi
  local err status=0
  err=$(mktemp)
  READ=$("${cmd[@]}" 2>"${err}") || status=$?
  if ((status == 0)); then
    rm -f "${err}"
    return 0
  fi
  READ=''
  if grep -qiE 'not[_ ]found|does not exist|cannot find|\b404\b' "${err}"; then
    rm -f "${err}"
    return 1
  fi
  printf 'error: %s failed:\n' "$(quote_cmd "${cmd[@]}")" >&2
  cat "${err}" >&2
  rm -f "${err}"
  exit 1
}

# gcloud_value PLACEHOLDER ARGS...: a read whose value (in READ) later commands
# need; in dry-run mode prints the command and answers PLACEHOLDER.
gcloud_value() {
  local placeholder=$1
  shift
  if ((DRY_RUN)); then
    printf '[dry-run] %s\n' "$(quote_cmd gcloud "$@" "--project=${PROJECT_ID}")" >&3
    READ=${placeholder}
    return 0
  fi
  gcloud_read "$@"
}

# exists ARGS...: whether `gcloud ARGS` (a describe) finds the resource.
exists() {
  gcloud_read "$@"
}

# fingerprint ARGS...: a short, label-safe digest of a configuration.
fingerprint() {
  printf '%s\0' "$@" | sha256sum | cut -c1-20
}

# load_pubsub_service_agent: sets PUBSUB_AGENT, the Pub/Sub service agent,
# which needs rights to dead-letter and to mint push tokens.
load_pubsub_service_agent() {
  gcloud_value PROJECT_NUMBER projects describe "${PROJECT_ID}" --format='value(projectNumber)' ||
    die "cannot read project ${PROJECT_ID}"
  [[ ${READ} =~ ^[A-Z_0-9]+$ ]] || die "unexpected project number '${READ}'"
  PUBSUB_AGENT="service-${READ}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# load_service_url SERVICE: sets SERVICE_URL, the HTTPS URL of a Cloud Run service.
load_service_url() {
  gcloud_value "https://$1-PLACEHOLDER.run.app" run services describe "$1" \
    "--region=${REGION}" --format='value(status.url)' ||
    die "Cloud Run service $1 not found: run deploy/services.sh first"
  [[ ${READ} == https://* ]] || die "Cloud Run service $1 has no URL yet (got '${READ}')"
  SERVICE_URL=${READ}
}

# ---------------------------------------------------------------------------
# Describe-before-change helpers.

# changed DESCRIPTION: record a change (the command itself was traced).
changed() {
  CHANGES+=("$*")
}

unchanged() {
  log "  ok: $*"
}

# finish: report what this script changed (or would change).
finish() {
  local script n=${#CHANGES[@]} change
  script=$(basename "$0" .sh)
  if ((n == 0)); then
    printf '%s: no changes\n' "${script}" >&3
    return
  fi
  if ((DRY_RUN)); then
    if [[ ${DRY_RUN_ASSUME} == present ]]; then
      printf '%s: %d change(s) planned (dry run, assuming everything exists):\n' "${script}" "${n}" >&3
    else
      printf '%s: %d change(s) planned (dry run, assuming nothing exists):\n' "${script}" "${n}" >&3
    fi
  else
    printf '%s: %d change(s):\n' "${script}" "${n}" >&3
  fi
  for change in "${CHANGES[@]}"; do
    printf '  - %s\n' "${change}" >&3
  done
}

# ensure_topic TOPIC
ensure_topic() {
  if exists pubsub topics describe "$1" --format='value(name)'; then
    unchanged "topic $1"
  else
    gcloud_change pubsub topics create "$1"
    changed "created topic $1"
  fi
}

# has_binding GROUP RESOURCE ROLE MEMBER [FLAGS...]: whether ROLE is granted to
# MEMBER on one resource, GROUP being the gcloud command group ("pubsub
# topics", "run services", "projects", ...). A dry run that reads the policy
# at all (DRY_RUN_ASSUME=present) counts every binding as there.
has_binding() {
  local group=$1 resource=$2 role=$3 member=$4
  shift 4
  local -a words
  read -r -a words <<<"${group}"
  gcloud_read "${words[@]}" get-iam-policy "${resource}" "$@" \
    --flatten='bindings[].members' --format='value(bindings.role,bindings.members)' &&
    { ((DRY_RUN)) || grep -Fxq "${role}"$'\t'"${member}" <<<"${READ}"; }
}

# binding_change VERB GROUP RESOURCE ROLE MEMBER [FLAGS...]: runs
# VERB-iam-policy-binding (add or remove), with --condition=None where the
# group's policies may hold conditions.
binding_change() {
  local verb=$1 group=$2 resource=$3 role=$4 member=$5
  shift 5
  local -a words extra=()
  read -r -a words <<<"${group}"
  case ${group} in
    projects | "iam service-accounts") extra=(--condition=None) ;;
  esac
  local run=gcloud_change
  [[ ${verb} == add ]] && run=gcloud_change_retry
  "${run}" "${words[@]}" "${verb}-iam-policy-binding" "${resource}" "$@" \
    "--member=${member}" "--role=${role}" "${extra[@]}" --format=none
}

# ensure_binding GROUP RESOURCE ROLE MEMBER [FLAGS...]: grants ROLE to MEMBER
# on one resource unless the policy already has it.
ensure_binding() {
  local group=$1 resource=$2 role=$3 member=$4
  if has_binding "$@"; then
    unchanged "${role} for ${member} on ${group} ${resource}"
  else
    binding_change add "$@"
    changed "granted ${role} to ${member} on ${group} ${resource}"
  fi
}

# remove_binding GROUP RESOURCE ROLE MEMBER [FLAGS...]: the reverse, if present.
remove_binding() {
  local group=$1 resource=$2 role=$3 member=$4
  if has_binding "$@"; then
    binding_change remove "$@"
    changed "revoked ${role} from ${member} on ${group} ${resource}"
  else
    unchanged "no ${role} for ${member} on ${group} ${resource}"
  fi
}

# ---------------------------------------------------------------------------
# Change capture.

# trigger_name KIND: the Eventarc trigger of KIND's changes: datasync-, the
# kind in lower case (cut to 30), a digest of the exact kind (two kinds that
# differ only in case get two triggers), and -SUFFIX.
trigger_name() {
  local kind=$1 base digest
  base=$(tr 'A-Z._' 'a-z--' <<<"${kind}" | cut -c1-30)
  digest=$(printf '%s' "${kind}" | sha256sum | cut -c1-6)
  with_suffix "datasync-${base}-${digest}"
}

# trigger_location LOCATION_ID: the Eventarc location of a Datastore database
# in LOCATION_ID. Eventarc has no multi-region locations: it maps the
# database's multi-regions nam5 and eur3 to us-central1 and europe-west4;
# a regional database's trigger is in its region.
trigger_location() {
  case $1 in
    nam5) printf 'us-central1' ;;
    eur3) printf 'europe-west4' ;;
    *) printf '%s' "$1" ;;
  esac
}
