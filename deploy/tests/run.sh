#!/usr/bin/env bash
# Tests for deploy/, without a network or a real gcloud:
#   - deploy/up.sh against a fake gcloud (deploy/tests/fake-gcloud/gcloud):
#     on an empty project (every flag that matters, least-privilege IAM), again
#     on the result (nothing changes), with a new image (services updated,
#     nothing created), with a suffix, with unwrapped push (and back), with
#     gen2 and more memory, with a schema history file (a secret, mounted;
#     unchanged on a re-run, a new version when edited, dropped without it),
#     and as a dry run (gcloud never called);
#   - deploy/down.sh: order, tolerance of what is gone, confirmation;
#   - the dashboard, alert and lag-metric JSON: valid, only known metric
#     types; the lag metric, tile and alert as rendered (LAG_P99_THRESHOLD_SECS
#     by default, set, and refused when not a number);
#   - deploy/tests/check_binary_libs.sh on canned and real ldd output.
# Ends with a line "N passed, M failed"; exits non-zero on any failure.
#
# Usage: bash deploy/tests/run.sh

set -euo pipefail

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY_DIR=$(cd "${TESTS_DIR}/.." && pwd)
FAKE_BIN="${TESTS_DIR}/fake-gcloud"
PROJECT=fake-project
SA_DOMAIN="${PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT="serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"

WORK=$(mktemp -d)
trap '[[ -n ${KEEP_WORK:-} ]] || rm -rf "${WORK}"' EXIT
mkdir -p "${WORK}/tmp"
export TMPDIR="${WORK}/tmp"

passed=0
failed=0

pass() {
  passed=$((passed + 1))
  printf 'ok    %s\n' "$1"
}

fail() {
  failed=$((failed + 1))
  printf 'FAIL  %s\n' "$1"
  [[ -z ${2:-} ]] || printf '%s\n' "$2" | sed 's/^/      /'
}

# check NAME COMMAND...: passes when COMMAND succeeds.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "${name}"
  else
    fail "${name}" "${out}"
  fi
}

# In the assertions below LOG is the fake gcloud's invocation log of the run
# under test, one line per call: the arguments joined by spaces.
LOG=''

# logged NAME REGEX...: some line of LOG matches every REGEX.
logged() {
  local name=$1 line regex ok
  shift
  while IFS= read -r line; do
    ok=1
    for regex in "$@"; do
      [[ ${line} =~ ${regex} ]] || {
        ok=0
        break
      }
    done
    if ((ok)); then
      pass "${name}"
      return
    fi
  done <"${LOG}"
  fail "${name}" "no gcloud call matches: $*"
}

# not_logged NAME REGEX: no line of LOG matches REGEX.
not_logged() {
  local name=$1 regex=$2 hits
  hits=$(grep -E -- "${regex}" "${LOG}" || true)
  if [[ -z ${hits} ]]; then
    pass "${name}"
  else
    fail "${name}" "unexpected gcloud calls:"$'\n'"${hits}"
  fi
}

# count_logged NAME N REGEX: exactly N lines of LOG match REGEX.
count_logged() {
  local name=$1 want=$2 regex=$3 got
  got=$(grep -cE -- "${regex}" "${LOG}" || true)
  if [[ ${got} == "${want}" ]]; then
    pass "${name}"
  else
    fail "${name}" "expected ${want} calls matching ${regex}, saw ${got}"
  fi
}

# first_line REGEX: number of the first line of LOG matching REGEX (or 999999).
first_line() {
  local n
  n=$(grep -nE -- "$1" "${LOG}" | head -n1 | cut -d: -f1)
  printf '%s' "${n:-999999}"
}

# before NAME REGEX_A REGEX_B: the first A comes before the first B.
before() {
  local a b
  a=$(first_line "$2")
  b=$(first_line "$3")
  if ((a < b && a != 999999)); then
    pass "$1"
  else
    fail "$1" "first '$2' at line ${a}, first '$3' at line ${b}"
  fi
}

# deploy MODE STATE NAME SCRIPT [ARGS...]: run a deploy script against the fake
# gcloud with state directory STATE; its log becomes LOG and its output
# NAME.out. Sets STATUS. IMAGE_TAG defaults to test-tag (set it empty for the
# script's own default) and SUFFIX to none.
STATUS=0
deploy() {
  local mode=$1 state=$2 name=$3 script=$4
  shift 4
  LOG="${WORK}/${name}.log"
  : >"${LOG}"
  STATUS=0
  env PATH="${FAKE_BIN}:${PATH}" FAKE_GCLOUD_MODE="${mode}" FAKE_GCLOUD_STATE="${WORK}/${state}" \
    FAKE_GCLOUD_LOG="${LOG}" PROJECT_ID="${PROJECT}" IMAGE_TAG="${IMAGE_TAG-test-tag}" \
    SUFFIX="${SUFFIX:-}" REGION=us-central1 \
    PUSH_NO_WRAPPER="${PUSH_NO_WRAPPER:-}" PUSH_WRITE_METADATA="${PUSH_WRITE_METADATA:-}" \
    LAG_P99_THRESHOLD_SECS="${LAG_P99_THRESHOLD_SECS:-}" SCHEMA_HISTORY="${SCHEMA_HISTORY:-}" \
    EXECUTION_ENVIRONMENT="${EXECUTION_ENVIRONMENT:-}" SYNC_MEMORY_MIB="${SYNC_MEMORY_MIB:-}" \
    AUDIT_MEMORY_MIB="${AUDIT_MEMORY_MIB:-}" CAPTURE_MEMORY_MIB="${CAPTURE_MEMORY_MIB:-}" \
    CAPTURE_KINDS="${CAPTURE_KINDS:-}" CAPTURE_DATABASE="${CAPTURE_DATABASE:-}" \
    CAPTURE_NAMESPACE="${CAPTURE_NAMESPACE:-}" SYNC_NAMESPACE="${SYNC_NAMESPACE:-}" \
    FAKE_GCLOUD_DATABASE_LOCATION="${FAKE_GCLOUD_DATABASE_LOCATION:-}" \
    bash "${DEPLOY_DIR}/${script}" "$@" >"${WORK}/${name}.out" 2>&1 </dev/null || STATUS=$?
}

# status_is NAME WANT RUN: the last deploy (named RUN) exited WANT.
status_is() {
  if [[ ${STATUS} == "$2" ]]; then
    pass "$1"
  else
    fail "$1" "exit status ${STATUS}, expected $2; output:"$'\n'"$(tail -n 30 "${WORK}/$3.out")"
  fi
}

# output_has NAME FILE TEXT: FILE contains TEXT (fixed string).
output_has() {
  if grep -qF -- "$3" "$2"; then
    pass "$1"
  else
    fail "$1" "'$3' not in $(basename "$2")"
  fi
}

# json_has NAME FILE EXPR: the Python expression EXPR holds of `doc`, FILE's JSON.
json_has() {
  local out
  if out=$(python3 -c 'import json, sys; doc = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$2" "$3" 2>&1); then
    pass "$1"
  else
    fail "$1" "not true of $(basename "$2"): $3"$'\n'"${out}"
  fi
}

MUTATING=' (create|deploy|update|delete|enable|submit|add|add-iam-policy-binding|remove-iam-policy-binding) '

# Linting these scripts is scripts/lint.sh's job (tools pinned by scripts/tools.sh,
# run by .ci/run): nothing is installed in the middle of a test run.

echo "== up.sh on an empty project"
deploy fresh state-main up-fresh up.sh
status_is "up.sh succeeds on an empty project" 0 up-fresh
count_logged "every gcloud call names the project" "$(wc -l <"${LOG}")" "--project=${PROJECT}( |$)"
for api in datastore firestore pubsub run cloudbuild artifactregistry logging monitoring; do
  logged "enables ${api}.googleapis.com" '^services enable ' " ${api}\.googleapis\.com "
done
for account in datasync-sync datasync-audit datasync-invoker; do
  logged "creates service account ${account}" "^iam service-accounts create ${account} "
done
logged "creates a Datastore-mode database" '^firestore databases create ' '--type=datastore-mode'
logged "sets the tombstone TTL policy" \
  '^firestore fields ttls update expire_at --collection-group=SyncTombstone ' ' --enable-ttl( |$)'
logged "creates the Artifact Registry docker repository" \
  '^artifacts repositories create datastore-sync ' '--repository-format=docker' '--location=us-central1'
for function in sync audit; do
  logged "builds the ${function} image with Cloud Build" '^builds submit ' '--config=.*/deploy/cloudbuild\.yaml' \
    "--substitutions=_FUNCTION=${function},_IMAGE=us-central1-docker\.pkg\.dev/${PROJECT}/datastore-sync/${function}-function:test-tag"
done

# Cloud Run.
not_logged "nothing is deployed with --allow-unauthenticated" '(^| )--allow-unauthenticated( |=|$)'
count_logged "both services are deployed private" 2 '^run deploy .* --no-allow-unauthenticated( |$)'
not_logged "no change capture without CAPTURE_KINDS" '(^eventarc |data-sync-capture|datasync-capture|datasync-trigger|eventarc\.googleapis\.com)'
logged "sync service: image, account, 256Mi, 60 s, 10 instances, 80 requests each" '^run deploy data-sync-processor ' \
  "--image=us-central1-docker\.pkg\.dev/${PROJECT}/datastore-sync/sync-function:test-tag " \
  "--service-account=datasync-sync@${SA_DOMAIN} " ' --memory=256Mi ' ' --timeout=60s ' ' --max-instances=10 ' ' --concurrency=80 ' \
  ' --region=us-central1 '
logged "sync service: environment, its memory as MEMORY_LIMIT_MIB" '^run deploy data-sync-processor ' \
  "--set-env-vars=GOOGLE_CLOUD_PROJECT=${PROJECT},SYNC_KIND=SyncEntity,EXTERNAL_TOPIC_PREFIX=external-sync-,DEAD_LETTER_TOPIC=sync-dead-letters,MAX_CLOCK_SKEW_SECS=300,READY_TIMEOUT_SECS=10,MEMORY_LIMIT_MIB=256 "
count_logged "both services: the first-generation environment, pinned" 2 '^run deploy .* --execution-environment=gen1 '
count_logged "both services: no secret mounted without SCHEMA_HISTORY" 2 '^run deploy .* --clear-secrets '
not_logged "no secret is created without SCHEMA_HISTORY" '^secrets '
not_logged "Secret Manager is not enabled without SCHEMA_HISTORY" 'secretmanager\.googleapis\.com'
logged "sync service: startup probe on /healthz for 3 x READY_TIMEOUT_SECS (2 s x 15)" '^run deploy data-sync-processor ' \
  ' --startup-probe=httpGet\.path=/healthz,httpGet\.port=8080,timeoutSeconds=1,periodSeconds=2,failureThreshold=15 '
logged "audit service: startup probe on /healthz" '^run deploy audit-logger ' \
  ' --startup-probe=httpGet\.path=/healthz,httpGet\.port=8080,timeoutSeconds=1,periodSeconds=1,failureThreshold=10 '
count_logged "both services: liveness probe on /livez" 2 \
  '^run deploy .* --liveness-probe=httpGet\.path=/livez,httpGet\.port=8080,timeoutSeconds=1,periodSeconds=10,failureThreshold=3 '
not_logged "no liveness probe on /healthz (it depends on the backends)" '--liveness-probe=httpGet\.path=/healthz'

logged "audit service: image, account, 128Mi, 30 s, 5 instances, 80 requests each, environment" '^run deploy audit-logger ' \
  "--image=us-central1-docker\.pkg\.dev/${PROJECT}/datastore-sync/audit-function:test-tag " \
  "--service-account=datasync-audit@${SA_DOMAIN} " ' --memory=128Mi ' ' --timeout=30s ' ' --max-instances=5 ' ' --concurrency=80 ' \
  "--set-env-vars=GOOGLE_CLOUD_PROJECT=${PROJECT},MEMORY_LIMIT_MIB=128 "
not_logged "no configuration baked in beyond the environment flags" '^run deploy .*--(update-env-vars|env-vars-file)'

# Pub/Sub.
for topic in data-sync-events sync-dead-letters external-sync-create external-sync-update external-sync-delete; do
  logged "creates topic ${topic}" "^pubsub topics create ${topic} "
done
logged "sync-processor: push to the sync service, ack 60 s, kept 7 d" '^pubsub subscriptions create sync-processor ' \
  ' --topic=data-sync-events ' ' --ack-deadline=60 ' ' --message-retention-duration=7d ' \
  ' --push-endpoint=https://data-sync-processor-fakehash-uc\.a\.run\.app ' \
  " --push-auth-service-account=datasync-invoker@${SA_DOMAIN} "
logged "sync-processor: dead-letters after 5 attempts" '^pubsub subscriptions create sync-processor ' \
  ' --dead-letter-topic=sync-dead-letters ' ' --max-delivery-attempts=5 '
logged "sync-processor: retry policy 10 s to 600 s" '^pubsub subscriptions create sync-processor ' \
  ' --min-retry-delay=10s ' ' --max-retry-delay=600s '
logged "audit-logger: push to the audit service, ack 30 s, kept 14 d, retry policy" \
  '^pubsub subscriptions create audit-logger ' ' --topic=data-sync-events ' ' --ack-deadline=30 ' \
  ' --message-retention-duration=14d ' ' --push-endpoint=https://audit-logger-fakehash-uc\.a\.run\.app ' \
  " --push-auth-service-account=datasync-invoker@${SA_DOMAIN} " ' --min-retry-delay=10s ' ' --max-retry-delay=600s '
not_logged "audit-logger has no dead-letter policy" '^pubsub subscriptions create audit-logger .*--dead-letter-topic'
logged "dlq-processor: pull subscription on the dead-letter topic, kept 30 d" \
  '^pubsub subscriptions create dlq-processor ' ' --topic=sync-dead-letters ' ' --message-retention-duration=30d '
not_logged "dlq-processor is a pull subscription" '^pubsub subscriptions create dlq-processor .*--push-endpoint'
before "service accounts exist before the services are deployed" '^iam service-accounts create datasync-sync ' '^run deploy '
before "services are deployed before subscriptions push to them" '^run deploy ' '^pubsub subscriptions create (sync-processor|audit-logger) '
before "the invoker may call the service before pushes start" \
  '^run services add-iam-policy-binding data-sync-processor ' '^pubsub subscriptions create sync-processor '

# IAM: least privilege.
count_logged "only two project-wide grants" 2 '^projects add-iam-policy-binding '
logged "project-wide: roles/datastore.user for the sync account only" '^projects add-iam-policy-binding fake-project ' \
  "--member=serviceAccount:datasync-sync@${SA_DOMAIN} " ' --role=roles/datastore\.user '
logged "project-wide: roles/logging.logWriter for the audit account only" '^projects add-iam-policy-binding fake-project ' \
  "--member=serviceAccount:datasync-audit@${SA_DOMAIN} " ' --role=roles/logging\.logWriter '
not_logged "no other project-wide role" \
  '^projects add-iam-policy-binding .*--role=roles/(pubsub|run|iam|editor|owner|datastore\.owner|logging\.admin)'
bindings=$(grep -E ' add-iam-policy-binding ' "${LOG}" |
  grep -vE '^(projects|pubsub topics|pubsub subscriptions|run services|iam service-accounts) add-iam-policy-binding ' || true)
if [[ -z ${bindings} ]]; then
  pass "every other grant is on one topic, subscription, service or account"
else
  fail "every other grant is on one topic, subscription, service or account" "${bindings}"
fi
for topic in external-sync-create external-sync-update external-sync-delete sync-dead-letters; do
  logged "sync account may publish to ${topic}" "^pubsub topics add-iam-policy-binding ${topic} " \
    "--member=serviceAccount:datasync-sync@${SA_DOMAIN} " ' --role=roles/pubsub\.publisher '
done
count_logged "the sync account publishes to those 4 topics only" 4 \
  "^pubsub topics add-iam-policy-binding .*--member=serviceAccount:datasync-sync@"
not_logged "the sync account may not publish to the source topic" '^pubsub topics add-iam-policy-binding data-sync-events '
for service in data-sync-processor audit-logger; do
  logged "invoker may call ${service}" "^run services add-iam-policy-binding ${service} " ' --region=us-central1 ' \
    "--member=serviceAccount:datasync-invoker@${SA_DOMAIN} " ' --role=roles/run\.invoker '
done
count_logged "run.invoker is granted on the two services only" 2 '--role=roles/run\.invoker'
logged "Pub/Sub service agent may publish to the dead-letter topic" '^pubsub topics add-iam-policy-binding sync-dead-letters ' \
  "--member=${PUBSUB_AGENT} " ' --role=roles/pubsub\.publisher '
logged "Pub/Sub service agent may acknowledge on sync-processor" '^pubsub subscriptions add-iam-policy-binding sync-processor ' \
  "--member=${PUBSUB_AGENT} " ' --role=roles/pubsub\.subscriber '
logged "Pub/Sub service agent may mint tokens for the invoker account only" \
  "^iam service-accounts add-iam-policy-binding datasync-invoker@${SA_DOMAIN} " "--member=${PUBSUB_AGENT} " \
  ' --role=roles/iam\.serviceAccountTokenCreator '

# Monitoring.
logged "creates the conflict log-based metric" '^logging metrics create datastore_sync_conflicts ' \
  '--log-filter=jsonPayload\.conflicts>0 AND resource\.type="cloud_run_revision"'
logged "creates the lag distribution metric from its definition file" \
  '^logging metrics create datastore_sync_publish_to_apply ' ' --config-from-file=[^ ]+\.json '
logged "creates the dashboard" '^monitoring dashboards create --config-from-file='
logged "creates the dead-letter alert policy" '^alpha monitoring policies create --policy-from-file='
count_logged "creates two alert policies (dead letters, lag)" 2 '^alpha monitoring policies create '
before "the lag metric exists before the dashboard shows it" \
  '^logging metrics create datastore_sync_publish_to_apply ' '^monitoring dashboards create '
before "the lag metric exists before an alert policy watches it" \
  '^logging metrics create datastore_sync_publish_to_apply ' '^alpha monitoring policies create '
output_has "monitoring.sh reports what it created" "${WORK}/up-fresh.out" "monitoring: 5 change(s):"
output_has "up.sh reports what it created" "${WORK}/up-fresh.out" "pubsub: 14 change(s):"

echo "== dashboard and alert JSON"
KNOWN_METRICS="pubsub.googleapis.com/topic/send_request_count
pubsub.googleapis.com/subscription/push_request_count
pubsub.googleapis.com/subscription/num_undelivered_messages
pubsub.googleapis.com/subscription/oldest_unacked_message_age
run.googleapis.com/request_count
run.googleapis.com/request_latencies
pubsub.googleapis.com/subscription/push_request_latencies
logging.googleapis.com/user/datastore_sync_conflicts
logging.googleapis.com/user/datastore_sync_publish_to_apply"

# check_metrics FILE KIND [EXTRA_KNOWN...]: FILE is JSON (python3 -m json.tool),
# every metric type it names is known, and every query names one.
check_metrics() {
  local file=$1 kind=$2
  shift 2
  check "$(basename "${file}") is valid JSON" python3 -m json.tool "${file}"
  check "$(basename "${file}") uses known metric types only" \
    env KNOWN_METRICS="${KNOWN_METRICS}" python3 - "${file}" "${kind}" "$@" <<'EOF'
import json, os, re, sys
path, kind, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
known = set(os.environ["KNOWN_METRICS"].split()) | set(extra)
doc = json.load(open(path))
filters = []
def walk(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, k)
    elif isinstance(node, list):
        for v in node:
            walk(v, key)
    elif key == "filter":
        filters.append(node)
walk(doc)
problems = []
if not filters:
    problems.append("no filters at all")
for f in filters:
    types = re.findall(r'metric\.type\s*=\s*"([^"]+)"', f)
    if not types:
        problems.append("filter without metric.type: " + f)
    problems += ["unknown metric type: " + t for t in types if t not in known]
if re.search(r"__[A-Z_]+__", json.dumps(doc)) and kind != "template":
    problems.append("unfilled placeholder")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
EOF
}

check_metrics "${DEPLOY_DIR}/monitoring/dashboard.json" template "logging.googleapis.com/user/__CONFLICT_METRIC__" \
  "logging.googleapis.com/user/__LAG_METRIC__"
check_metrics "${DEPLOY_DIR}/monitoring/alert-dead-letters.json" template
check_metrics "${DEPLOY_DIR}/monitoring/alert-lag.json" template "logging.googleapis.com/user/__LAG_METRIC__"
check "lag-metric.json is valid JSON" python3 -m json.tool "${DEPLOY_DIR}/monitoring/lag-metric.json"

# check_lag STATE LABEL THRESHOLD_MS [SERVICE] [METRIC]: the lag metric, tile
# and alert as deploy/monitoring.sh rendered them (the metric's file as the
# fake gcloud received it, the dashboard, and the policy found by display
# name), the alert at THRESHOLD_MS.
check_lag() {
  local state=$1 label=$2 ms=$3 service=${4:-data-sync-processor} metric=${5:-datastore_sync_publish_to_apply}
  local metric_file="${WORK}/${state}/captured-metric-${metric}.json" policy='' f
  for f in "${WORK}/${state}"/captured-alertPolicies-*.json; do
    if grep -qF '"displayName": "Datastore Sync publish-to-apply lag' "${f}"; then policy=${f}; fi
  done
  if [[ ! -f ${metric_file} || -z ${policy} ]]; then
    fail "${label}: the lag metric and policy were created from files" "missing ${metric_file} or the lag policy"
    return
  fi
  json_has "${label}: the lag metric is a DELTA distribution in ms" "${metric_file}" \
    'doc["metricDescriptor"]["metricKind"] == "DELTA" and doc["metricDescriptor"]["valueType"] == "DISTRIBUTION" and doc["metricDescriptor"]["unit"] == "ms"'
  json_has "${label}: the lag metric extracts jsonPayload.publishToApplyMs" "${metric_file}" \
    'doc["valueExtractor"] == "EXTRACT(jsonPayload.publishToApplyMs)"'
  json_has "${label}: the lag metric reads the processed entries of ${service}, duplicates left out" "${metric_file}" \
    "all(t in doc['filter'] for t in ['resource.labels.service_name=\"${service}\"', 'jsonPayload.message=\"event processed\"', 'jsonPayload.publishToApplyMs:*', 'jsonPayload.outcome!=\"duplicate\"'])"
  json_has "${label}: the lag buckets are exponential from 1 ms to at least 1 h" "${metric_file}" \
    '(lambda e: e["scale"] <= 1 and e["scale"] * e["growthFactor"] ** e["numFiniteBuckets"] >= 3600000 and e["numFiniteBuckets"] <= 200)(doc["bucketOptions"]["exponentialBuckets"])'
  json_has "${label}: the lag metric is labelled with the delivery attempt" "${metric_file}" \
    'doc["labelExtractors"] == {"attempt": "EXTRACT(jsonPayload.span.attempt)"} and [l["key"] for l in doc["metricDescriptor"]["labels"]] == ["attempt"]'
  json_has "${label}: the lag alert watches p99 of the metric" "${policy}" \
    "(lambda c: c['filter'].startswith('metric.type=\"logging.googleapis.com/user/${metric}\"') and c['aggregations'] == [{'alignmentPeriod': '60s', 'perSeriesAligner': 'ALIGN_DELTA', 'crossSeriesReducer': 'REDUCE_PERCENTILE_99'}])(doc['conditions'][0]['conditionThreshold'])"
  json_has "${label}: the lag alert fires above ${ms} ms for 10 minutes" "${policy}" \
    "(lambda c: c['thresholdValue'] == ${ms} and c['comparison'] == 'COMPARISON_GT' and c['duration'] == '600s')(doc['conditions'][0]['conditionThreshold'])"
  json_has "${label}: the dashboard has the lag p50 and p99, with the alert threshold" "${WORK}/${state}/captured-dashboards-1.json" \
    "any(sorted(d['timeSeriesQuery']['timeSeriesFilter']['aggregation']['crossSeriesReducer'] for d in t['widget']['xyChart']['dataSets'] if '/user/${metric}\"' in d['timeSeriesQuery']['timeSeriesFilter']['filter']) == ['REDUCE_PERCENTILE_50', 'REDUCE_PERCENTILE_99'] and t['widget']['xyChart'].get('thresholds', [{}])[0].get('value') == ${ms} for t in doc['mosaicLayout']['tiles'])"
}
check_lag state-main "default threshold" 60000
dashboard="${WORK}/state-main/captured-dashboards-1.json"
alert="${WORK}/state-main/captured-alertPolicies-1.json"
if [[ -f ${dashboard} && -f ${alert} ]]; then
  pass "the fake gcloud received the rendered dashboard and alert policy"
  check_metrics "${dashboard}" rendered
  check_metrics "${alert}" rendered
  for needle in 'Datastore Sync Monitoring' 'pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"dlq-processor\"' \
    'subscription/oldest_unacked_message_age' 'run.googleapis.com/request_latencies' \
    'metric.label.response_code_class=\"5xx\"' 'logging.googleapis.com/user/datastore_sync_conflicts' \
    'data-sync-processor' 'resource.label.topic_id=\"data-sync-events\"'; do
    output_has "dashboard shows ${needle//\\/}" "${dashboard}" "${needle}"
  done
  for needle in '"comparison": "COMPARISON_GT"' '"thresholdValue": 0' '"duration": "300s"' \
    'num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"dlq-processor\"'; do
    output_has "alert policy has ${needle//\\/}" "${alert}" "${needle}"
  done
else
  fail "the fake gcloud received the rendered dashboard and alert policy" "missing ${dashboard} or ${alert}"
fi

echo "== up.sh again on the result"
deploy existing state-main up-again up.sh
status_is "up.sh succeeds on an up-to-date project" 0 up-again
not_logged "a second run creates nothing" ' create '
not_logged "a second run changes nothing" "${MUTATING}"
for step in apis iam datastore images services pubsub monitoring; do
  output_has "a second run reports no changes for ${step}" "${WORK}/up-again.out" "${step}: no changes"
done

echo "== up.sh with a new image"
IMAGE_TAG=test-tag-2 deploy existing state-main up-new-image up.sh
status_is "up.sh succeeds with a new image" 0 up-new-image
not_logged "a new image creates nothing" ' create '
count_logged "a new image is built for each function" 2 '^builds submit .*:test-tag-2( |$)'
logged "the sync service is updated to the new image" '^run deploy data-sync-processor ' 'sync-function:test-tag-2 ' \
  ' --no-allow-unauthenticated '
logged "the audit service is updated to the new image" '^run deploy audit-logger ' 'audit-function:test-tag-2 '
not_logged "subscriptions and grants are untouched" ' (update|add-iam-policy-binding) '
output_has "up.sh reports the update" "${WORK}/up-new-image.out" "updated service data-sync-processor"

echo "== up.sh on a subscription that drifted"
sed -i 's/^\(pubsub subscriptions sync-processor\tdeploy_fingerprint\t\).*/\1stale/' "${WORK}/state-main/labels"
IMAGE_TAG=test-tag-2 deploy existing state-main up-drift up.sh
status_is "up.sh succeeds on a drifted subscription" 0 up-drift
logged "the drifted subscription is updated to every setting" '^pubsub subscriptions update sync-processor ' \
  ' --ack-deadline=60 ' ' --message-retention-duration=7d ' ' --push-endpoint=https://data-sync-processor-' \
  ' --push-auth-service-account=datasync-invoker@' ' --dead-letter-topic=sync-dead-letters ' ' --max-delivery-attempts=5 ' \
  ' --min-retry-delay=10s ' ' --max-retry-delay=600s ' ' --update-labels=deploy_fingerprint='
count_logged "only the drifted subscription changes" 1 "${MUTATING}"

echo "== up.sh --dry-run"
deploy fresh state-dry up-dry up.sh --dry-run
status_is "up.sh --dry-run succeeds" 0 up-dry
if [[ -s ${LOG} ]]; then
  fail "--dry-run never calls gcloud" "$(head -n 5 "${LOG}")"
else
  pass "--dry-run never calls gcloud"
fi
for command in 'gcloud services enable ' 'gcloud iam service-accounts create datasync-sync ' \
  'gcloud projects add-iam-policy-binding fake-project ' 'gcloud firestore fields ttls update expire_at ' \
  'gcloud builds submit ' 'gcloud run deploy data-sync-processor ' 'gcloud run deploy audit-logger ' \
  'gcloud pubsub topics create data-sync-events ' 'gcloud pubsub subscriptions create sync-processor ' \
  'gcloud logging metrics create datastore_sync_conflicts ' 'gcloud monitoring dashboards create ' \
  'gcloud logging metrics describe datastore_sync_publish_to_apply ' \
  'gcloud logging metrics create datastore_sync_publish_to_apply --config-from-file=' \
  'gcloud alpha monitoring policies create ' 'gcloud pubsub subscriptions describe sync-processor '; do
  output_has "--dry-run prints: ${command}" "${WORK}/up-dry.out" "[dry-run] ${command}"
done
output_has "--dry-run prints placeholders for values it did not read" "${WORK}/up-dry.out" \
  "--push-endpoint=https://data-sync-processor-PLACEHOLDER.run.app"
dry_policies=$(grep -c '^\[dry-run\] gcloud alpha monitoring policies create ' "${WORK}/up-dry.out" || true)
if [[ ${dry_policies} == 2 ]]; then
  pass "--dry-run prints both alert policies"
else
  fail "--dry-run prints both alert policies" "${dry_policies} printed"
fi
dry_policy=$(grep -oE -- '--policy-from-file=[^ ]+' "${WORK}/up-dry.out" | tail -n1 | cut -d= -f2)
if [[ -f ${dry_policy} ]]; then
  json_has "--dry-run keeps the rendered lag policy, with the default threshold" "${dry_policy}" \
    "doc['displayName'] == 'Datastore Sync publish-to-apply lag' and doc['conditions'][0]['conditionThreshold']['thresholdValue'] == 60000"
else
  fail "--dry-run keeps the rendered lag policy, with the default threshold" "no file '${dry_policy}'"
fi
IMAGE_TAG='' deploy fresh state-dry images-dry images.sh --dry-run
if grep -qE 'sync-function:[0-9a-f]{12}(-dirty-[0-9a-f]{8})? ' "${WORK}/images-dry.out"; then
  pass "the default image tag is the commit (plus a digest of uncommitted changes)"
else
  fail "the default image tag is the commit (plus a digest of uncommitted changes)" "$(grep 'builds submit' "${WORK}/images-dry.out")"
fi

echo "== up.sh with a suffix"
SUFFIX=abc123 deploy fresh state-suffix up-suffix up.sh
status_is "up.sh succeeds with SUFFIX" 0 up-suffix
logged "suffixed topic" '^pubsub topics create data-sync-events-abc123 '
logged "suffixed subscriptions and dead-letter topic" '^pubsub subscriptions create sync-processor-abc123 ' \
  ' --topic=data-sync-events-abc123 ' ' --dead-letter-topic=sync-dead-letters-abc123 ' \
  ' --push-endpoint=https://data-sync-processor-abc123-'
logged "suffixed dlq subscription" '^pubsub subscriptions create dlq-processor-abc123 ' ' --topic=sync-dead-letters-abc123 '
logged "suffixed services, accounts and dead-letter setting" '^run deploy data-sync-processor-abc123 ' \
  "--service-account=datasync-sync-abc123@${SA_DOMAIN} " 'DEAD_LETTER_TOPIC=sync-dead-letters-abc123,' \
  "/datastore-sync-abc123/sync-function:"
logged "external topics are shared, not suffixed" '^pubsub topics create external-sync-create '
logged "suffixed conflict metric" '^logging metrics create datastore_sync_conflicts_abc123 ' \
  'resource\.labels\.service_name="data-sync-processor-abc123"'
logged "suffixed lag metric" '^logging metrics create datastore_sync_publish_to_apply_abc123 '
if [[ -f ${WORK}/state-suffix/captured-dashboards-1.json ]]; then
  check_metrics "${WORK}/state-suffix/captured-dashboards-1.json" rendered \
    "logging.googleapis.com/user/datastore_sync_conflicts_abc123" \
    "logging.googleapis.com/user/datastore_sync_publish_to_apply_abc123"
  check_lag state-suffix "suffix" 60000 data-sync-processor-abc123 datastore_sync_publish_to_apply_abc123
  output_has "suffixed dashboard watches the suffixed dead-letter subscription" \
    "${WORK}/state-suffix/captured-dashboards-1.json" 'subscription_id=\"dlq-processor-abc123\"'
else
  fail "suffixed dashboard was created" "no captured dashboard"
fi

echo "== unwrapped push (PUSH_NO_WRAPPER, PUSH_WRITE_METADATA)"
deploy fresh state-wrapped up-default-wrapper pubsub.sh
not_logged "pushes are wrapped by default" '^pubsub subscriptions (create|update) .*--push-no-wrapper'
PUSH_NO_WRAPPER=1 PUSH_WRITE_METADATA=1 deploy fresh state-unwrapped up-unwrapped up.sh
status_is "up.sh succeeds with PUSH_NO_WRAPPER=1 PUSH_WRITE_METADATA=1" 0 up-unwrapped
for sub in sync-processor audit-logger; do
  logged "${sub}: unwrapped with write-metadata" "^pubsub subscriptions create ${sub} " \
    ' --push-endpoint=https://' ' --push-no-wrapper ' ' --push-no-wrapper-write-metadata '
done
not_logged "the dlq pull subscription is not given push flags" '^pubsub subscriptions create dlq-processor .*--push-no-wrapper'
PUSH_NO_WRAPPER=1 deploy existing state-unwrapped up-unwrapped-bare pubsub.sh
status_is "switching to unwrapped without metadata succeeds" 0 up-unwrapped-bare
count_logged "both push subscriptions are updated to unwrapped without metadata" 2 \
  '^pubsub subscriptions update (sync-processor|audit-logger) .* --push-no-wrapper '
not_logged "... and lose write-metadata" '^pubsub subscriptions update .*--push-no-wrapper-write-metadata'
PUSH_NO_WRAPPER=1 deploy existing state-unwrapped up-unwrapped-again pubsub.sh
not_logged "the same setting again changes nothing" "${MUTATING}"
deploy existing state-unwrapped up-rewrapped pubsub.sh
count_logged "PUSH_NO_WRAPPER=0 updates both back to the wrapped envelope" 2 \
  '^pubsub subscriptions update (sync-processor|audit-logger) .*--push-endpoint='
not_logged "... with no unwrapped flag" '^pubsub subscriptions update .*--push-no-wrapper'

echo "== execution environment and memory"
EXECUTION_ENVIRONMENT=gen2 SYNC_MEMORY_MIB=512 AUDIT_MEMORY_MIB=1024 deploy fresh state-gen2 services-gen2 services.sh
status_is "services.sh succeeds with gen2 and 512/1024 MiB" 0 services-gen2
logged "sync service: gen2, 512Mi, MEMORY_LIMIT_MIB=512" '^run deploy data-sync-processor ' \
  ' --execution-environment=gen2 ' ' --memory=512Mi ' ',MEMORY_LIMIT_MIB=512 '
logged "audit service: gen2, 1024Mi, MEMORY_LIMIT_MIB=1024" '^run deploy audit-logger ' \
  ' --execution-environment=gen2 ' ' --memory=1024Mi ' ',MEMORY_LIMIT_MIB=1024 '
EXECUTION_ENVIRONMENT=gen2 deploy fresh state-bad gen2-small services.sh
status_is "gen2 with the default memory is refused" 1 gen2-small
output_has "... saying gen2 needs 512 MiB" "${WORK}/gen2-small.out" \
  "error: SYNC_MEMORY_MIB '256' is below 512 MiB, the least Cloud Run's gen2 environment takes"
if [[ -s ${LOG} ]]; then fail "... before any gcloud call" "$(head -n 3 "${LOG}")"; else pass "... before any gcloud call"; fi

echo "== schema history (SCHEMA_HISTORY)"
history="${WORK}/history.toml"
printf 'current = 2\n[[upcast]]\nfrom = 1\nrename = { name = "title" }\n' >"${history}"
SCHEMA_HISTORY=${history} deploy fresh state-schema up-schema up.sh
status_is "up.sh succeeds with SCHEMA_HISTORY" 0 up-schema
logged "enables Secret Manager" '^services enable ' ' secretmanager\.googleapis\.com '
logged "keeps the file in a secret, as its version 1" '^secrets create datastore-sync-schema-history ' \
  "--data-file=${history} " ' --replication-policy=automatic ' \
  ' --labels=deployed_sha256=[0-9a-f]{40},deployed_version=1 '
check "the secret's version 1 is the file" cmp "${history}" "${WORK}/state-schema/captured-secret-datastore-sync-schema-history-1"
for account in sync audit; do
  logged "the ${account} account may read the secret" '^secrets add-iam-policy-binding datastore-sync-schema-history ' \
    "--member=serviceAccount:datasync-${account}@${SA_DOMAIN} " ' --role=roles/secretmanager\.secretAccessor '
done
count_logged "no other grant on the secret" 2 '^secrets add-iam-policy-binding '
for service in data-sync-processor audit-logger; do
  logged "${service} mounts version 1 and reads it as SCHEMA_HISTORY_FILE" "^run deploy ${service} " \
    ' --set-secrets=/etc/datastore-sync/schema-history\.toml=datastore-sync-schema-history:1 ' \
    ',SCHEMA_HISTORY_FILE=/etc/datastore-sync/schema-history\.toml '
done
not_logged "nothing clears the secrets then" '^run deploy .*--clear-secrets'
before "the accounts may read the secret before the services mount it" '^secrets add-iam-policy-binding ' '^run deploy '
SCHEMA_HISTORY=${history} deploy existing state-schema up-schema-again up.sh
status_is "up.sh again with the same file succeeds" 0 up-schema-again
not_logged "the same file again changes nothing" "${MUTATING}"
printf '# edited\n' >>"${history}"
SCHEMA_HISTORY=${history} deploy existing state-schema services-schema-edit services.sh
status_is "services.sh succeeds with an edited file" 0 services-schema-edit
logged "an edited file is added as a new version" '^secrets versions add datastore-sync-schema-history ' \
  "--data-file=${history} " ' --format=value\(name\) ' ' --quiet'
check "the secret's version 2 is the edited file" cmp "${history}" "${WORK}/state-schema/captured-secret-datastore-sync-schema-history-2"
logged "the secret's labels name the version deployed" '^secrets update datastore-sync-schema-history ' \
  ' --update-labels=deployed_sha256=[0-9a-f]{40},deployed_version=2 '
count_logged "both services move to version 2" 2 \
  '^run deploy .* --set-secrets=/etc/datastore-sync/schema-history\.toml=datastore-sync-schema-history:2 '
not_logged "no second secret" '^secrets create '
deploy existing state-schema services-schema-off services.sh
count_logged "without SCHEMA_HISTORY both services drop the mount" 2 '^run deploy .* --clear-secrets '
not_logged "... and the variable" '^run deploy .*SCHEMA_HISTORY_FILE='
printf '{"current": 1}\n' >"${WORK}/history.json"
SCHEMA_HISTORY=${WORK}/history.json deploy fresh state-dry services-schema-dry services.sh --dry-run
status_is "services.sh --dry-run with SCHEMA_HISTORY succeeds" 0 services-schema-dry
if [[ -s ${LOG} ]]; then fail "... and calls no gcloud" "$(head -n 3 "${LOG}")"; else pass "... and calls no gcloud"; fi
output_has "--dry-run prints the secret it would create" "${WORK}/services-schema-dry.out" \
  "[dry-run] gcloud secrets create datastore-sync-schema-history --data-file=${WORK}/history.json"
output_has "--dry-run mounts a JSON history under its extension" "${WORK}/services-schema-dry.out" \
  "--set-secrets=/etc/datastore-sync/schema-history.json=datastore-sync-schema-history:1"
SCHEMA_HISTORY=${history} deploy existing state-schema down-schema down.sh --yes
status_is "down.sh succeeds with the secret" 0 down-schema
logged "down.sh deletes the schema-history secret" '^secrets delete datastore-sync-schema-history '
before "down: services before the secret they mount" '^run services delete ' '^secrets delete '

echo "== change capture (CAPTURE_KINDS)"
CAPTURE_KINDS=Product,Order CAPTURE_NAMESPACE=shop deploy fresh state-capture up-capture up.sh
status_is "up.sh succeeds with CAPTURE_KINDS=Product,Order CAPTURE_NAMESPACE=shop" 0 up-capture
logged "enables Eventarc" '^services enable ' ' eventarc\.googleapis\.com ' ' eventarcpublishing\.googleapis\.com '
for account in datasync-capture datasync-trigger; do
  logged "creates service account ${account}" "^iam service-accounts create ${account} "
done
logged "the trigger account may receive events (project-wide: Eventarc grants it no narrower)" \
  '^projects add-iam-policy-binding fake-project ' "--member=serviceAccount:datasync-trigger@${SA_DOMAIN} " \
  ' --role=roles/eventarc\.eventReceiver '
count_logged "three project-wide grants with capture" 3 '^projects add-iam-policy-binding '
not_logged "the capture account has no project-wide role" '^projects add-iam-policy-binding .*datasync-capture@'
logged "Pub/Sub service agent may mint tokens for the trigger account" \
  "^iam service-accounts add-iam-policy-binding datasync-trigger@${SA_DOMAIN} " "--member=${PUBSUB_AGENT} " \
  ' --role=roles/iam\.serviceAccountTokenCreator '
logged "builds the capture image with Cloud Build" '^builds submit ' \
  "--substitutions=_FUNCTION=capture,_IMAGE=us-central1-docker\.pkg\.dev/${PROJECT}/datastore-sync/capture-function:test-tag"
logged "capture service: image, account, private, gen1, 256Mi, 60 s, 10 instances, 80 requests each" \
  '^run deploy data-sync-capture ' "--image=us-central1-docker\.pkg\.dev/${PROJECT}/datastore-sync/capture-function:test-tag " \
  "--service-account=datasync-capture@${SA_DOMAIN} " ' --no-allow-unauthenticated ' ' --execution-environment=gen1 ' \
  ' --memory=256Mi ' ' --timeout=60s ' ' --max-instances=10 ' ' --concurrency=80 ' ' --region=us-central1 '
logged "capture service: environment, separated by ';' so that the kinds keep their comma" '^run deploy data-sync-capture ' \
  "--set-env-vars=\^;\^GOOGLE_CLOUD_PROJECT=${PROJECT};EVENTS_TOPIC=data-sync-events;DEAD_LETTER_TOPIC=sync-dead-letters;CAPTURE_KINDS=Product,Order;SYNC_KIND=SyncEntity;READY_TIMEOUT_SECS=10;MEMORY_LIMIT_MIB=256 "
logged "capture service: startup probe on /healthz (3 x READY_TIMEOUT_SECS), liveness on /livez" '^run deploy data-sync-capture ' \
  ' --startup-probe=httpGet\.path=/healthz,httpGet\.port=8080,timeoutSeconds=1,periodSeconds=2,failureThreshold=15 ' \
  ' --liveness-probe=httpGet\.path=/livez,'
logged "the trigger account may invoke the capture service" '^run services add-iam-policy-binding data-sync-capture ' \
  ' --region=us-central1 ' "--member=serviceAccount:datasync-trigger@${SA_DOMAIN} " ' --role=roles/run\.invoker '
count_logged "... and nobody else may" 1 '^run services add-iam-policy-binding data-sync-capture '
not_logged "the trigger account may invoke nothing else" \
  '^run services add-iam-policy-binding (data-sync-processor|audit-logger) .*datasync-trigger@'
for topic in data-sync-events sync-dead-letters; do
  logged "the capture account may publish to ${topic}" "^pubsub topics add-iam-policy-binding ${topic} " \
    "--member=serviceAccount:datasync-capture@${SA_DOMAIN} " ' --role=roles/pubsub\.publisher '
done
count_logged "the capture account publishes to those 2 topics only" 2 \
  "^pubsub topics add-iam-policy-binding .*--member=serviceAccount:datasync-capture@"
for kind in Product Order; do
  logged "a trigger for ${kind}: written events of its root entities in (default)/shop, as protobuf, to the capture service" \
    "^eventarc triggers create datasync-${kind,,}-[0-9a-f]{6} " ' --location=us-central1 ' \
    ' --destination-run-service=data-sync-capture ' ' --destination-run-region=us-central1 ' \
    ' --event-filters=type=google\.cloud\.datastore\.entity\.v1\.written ' ' --event-filters=database=\(default\) ' \
    ' --event-filters=namespace=shop ' " --event-filters-path-pattern=entity=${kind}/\* " \
    ' --event-data-content-type=application/protobuf ' " --service-account=datasync-trigger@${SA_DOMAIN} " \
    ' --labels=datasync_capture=default,deploy_fingerprint=[0-9a-f]{20} '
done
count_logged "one trigger per kind" 2 '^eventarc triggers create '
logged "the triggers' location is read from the database" '^firestore databases describe --database=\(default\) ' \
  '--format=value\(locationId\)'
before "the trigger account may receive events before a trigger uses it" \
  '^projects add-iam-policy-binding .*eventarc\.eventReceiver' '^eventarc triggers create '
before "the capture service exists before its triggers" '^run deploy data-sync-capture ' '^eventarc triggers create '
before "the trigger account may invoke it before a trigger pushes" \
  '^run services add-iam-policy-binding data-sync-capture ' '^eventarc triggers create '
output_has "capture.sh reports what it created" "${WORK}/up-capture.out" "capture: 2 change(s):"
CAPTURE_KINDS=Product,Order CAPTURE_NAMESPACE=shop deploy existing state-capture up-capture-again up.sh
status_is "up.sh again with the same capture settings succeeds" 0 up-capture-again
not_logged "the same capture settings again change nothing" "${MUTATING}"
output_has "... and capture.sh says so" "${WORK}/up-capture-again.out" "capture: no changes"
CAPTURE_KINDS=Product CAPTURE_NAMESPACE=shop deploy existing state-capture capture-fewer capture.sh
status_is "capture.sh succeeds with a kind dropped" 0 capture-fewer
logged "the dropped kind's trigger is deleted" \
  '^eventarc triggers delete projects/fake-project/locations/us-central1/triggers/datasync-order-[0-9a-f]{6} '
count_logged "... and nothing else changes" 1 "${MUTATING}"
CAPTURE_KINDS=Product CAPTURE_NAMESPACE=shop deploy existing state-capture capture-fewer-again capture.sh
not_logged "running it again changes nothing" "${MUTATING}"
CAPTURE_KINDS=Product CAPTURE_NAMESPACE=orders deploy existing state-capture capture-moved capture.sh
logged "a trigger whose settings changed is updated in place" '^eventarc triggers update datasync-product-[0-9a-f]{6} ' \
  ' --location=us-central1 ' ' --event-filters=namespace=orders ' ' --event-filters-path-pattern=entity=Product/\* ' \
  ' --update-labels=datasync_capture=default,deploy_fingerprint=[0-9a-f]{20} '
not_logged "... not recreated" '^eventarc triggers (create|delete) '
for pair in eur3:europe-west4 nam5:us-central1 europe-west3:europe-west3; do
  FAKE_GCLOUD_DATABASE_LOCATION=${pair%%:*} CAPTURE_KINDS=Product CAPTURE_NAMESPACE=shop \
    deploy fresh "state-location-${pair%%:*}" "capture-${pair%%:*}" capture.sh
  logged "a database in ${pair%%:*} gets its trigger in ${pair#*:}" '^eventarc triggers create ' " --location=${pair#*:} "
done
SYNC_NAMESPACE=synced CAPTURE_KINDS=Product deploy fresh state-capture-ns up-capture-ns up.sh
status_is "capturing the default namespace works when the sync function writes elsewhere (SYNC_NAMESPACE)" 0 up-capture-ns
logged "... the sync function gets it as DATASTORE_NAMESPACE" '^run deploy data-sync-processor ' \
  ',MEMORY_LIMIT_MIB=256,DATASTORE_NAMESPACE=synced '
logged "... and the trigger captures (default)" '^eventarc triggers create datasync-product-' ' --event-filters=namespace=\(default\) '
CAPTURE_KINDS=Product CAPTURE_NAMESPACE=shop deploy fresh state-dry up-capture-dry up.sh --dry-run
status_is "up.sh --dry-run with CAPTURE_KINDS succeeds" 0 up-capture-dry
if [[ -s ${LOG} ]]; then fail "... and calls no gcloud" "$(head -n 3 "${LOG}")"; else pass "... and calls no gcloud"; fi
for command in 'gcloud services enable ' 'gcloud iam service-accounts create datasync-trigger ' \
  'gcloud run deploy data-sync-capture ' 'gcloud eventarc triggers create datasync-product-' \
  "'--event-filters-path-pattern=entity=Product/*' --event-data-content-type=application/protobuf"; do
  output_has "--dry-run prints: ${command}" "${WORK}/up-capture-dry.out" "${command}"
done
deploy existing state-capture down-capture down.sh --yes
status_is "down.sh succeeds with capture" 0 down-capture
logged "down.sh finds the triggers by label, in every location" '^eventarc triggers list --location=- ' \
  ' --filter=labels\.datasync_capture=default '
logged "down.sh deletes the trigger" '^eventarc triggers delete projects/fake-project/locations/us-central1/triggers/datasync-product-'
for pattern in '^run services delete data-sync-capture ' "^iam service-accounts delete datasync-capture@" \
  "^iam service-accounts delete datasync-trigger@" \
  "^projects remove-iam-policy-binding fake-project .*datasync-trigger@.* --role=roles/eventarc\.eventReceiver "; do
  logged "down.sh deletes: ${pattern#^}" "${pattern}"
done
before "down: triggers before the service they push to" '^eventarc triggers delete ' '^run services delete '
deploy fresh state-dry down-capture-dry down.sh --dry-run
output_has "down.sh --dry-run prints the trigger deletes" "${WORK}/down-capture-dry.out" "[dry-run] gcloud eventarc triggers delete "
output_has "down.sh --dry-run prints the capture service's delete" "${WORK}/down-capture-dry.out" \
  "[dry-run] gcloud run services delete data-sync-capture "

# Every Eventarc and capture command of the dry runs is one the real gcloud
# parses: with no account configured it stops at "no active account"
# (status 1), after parsing, where a flag it does not know stops it at
# parsing (status 2). Run only where a real gcloud is installed; no network.
real_gcloud=''
for candidate in $(type -ap gcloud); do
  [[ ${candidate} == "${FAKE_BIN}/gcloud" ]] || {
    real_gcloud=${candidate}
    break
  }
done
if [[ -n ${real_gcloud} ]]; then
  mkdir -p "${WORK}/gcloud-config"
  grep -hE '^\[dry-run\] gcloud .*(eventarc|data-sync-capture|datasync-capture|datasync-trigger)' \
    "${WORK}/up-capture-dry.out" "${WORK}/down-capture-dry.out" | sed 's/^\[dry-run\] gcloud //' | sort -u >"${WORK}/capture-commands"
  while IFS= read -r args; do
    out=$(CLOUDSDK_CONFIG="${WORK}/gcloud-config" CLOUDSDK_CORE_DISABLE_PROMPTS=1 \
      timeout 60 bash -c "$(printf '%q' "${real_gcloud}") ${args}" 2>&1 </dev/null) && code=0 || code=$?
    if ((code != 2)) && grep -qiE 'active account|credentials' <<<"${out}"; then
      pass "the real gcloud parses: gcloud ${args:0:80}"
    else
      fail "the real gcloud parses: gcloud ${args}" "status ${code}: $(tail -n 5 <<<"${out}")"
    fi
  done <"${WORK}/capture-commands"
else
  echo "(no real gcloud installed: the parse check of the capture commands is skipped)"
fi

echo "== LAG_P99_THRESHOLD_SECS"
LAG_P99_THRESHOLD_SECS=90 deploy fresh state-lag90 monitoring-lag90 monitoring.sh
status_is "monitoring.sh succeeds with LAG_P99_THRESHOLD_SECS=90" 0 monitoring-lag90
check_lag state-lag90 "LAG_P99_THRESHOLD_SECS=90" 90000
output_has "the lag alert's condition names the threshold" "${WORK}/state-lag90/captured-alertPolicies-2.json" \
  '"displayName": "p99 publish-to-apply lag above 90 s for 10 minutes"'
LAG_P99_THRESHOLD_SECS=soon deploy fresh state-bad lag-soon monitoring.sh
status_is "a non-numeric LAG_P99_THRESHOLD_SECS is refused" 1 lag-soon
output_has "... naming the variable and the expected form" "${WORK}/lag-soon.out" \
  "error: LAG_P99_THRESHOLD_SECS 'soon' must be a whole number of seconds, 1-3600"
if [[ -s ${LOG} ]]; then fail "... before any gcloud call" "$(head -n 3 "${LOG}")"; else pass "... before any gcloud call"; fi

echo "== configuration errors"
for bad in "PROJECT_ID=" "SUFFIX=Bad_Suffix" "REGION=nowhere" "SYNC_CONCURRENCY=0" "AUDIT_CONCURRENCY=5000" \
  "READY_TIMEOUT_SECS=0" "READY_TIMEOUT_SECS=81" \
  "LAG_P99_THRESHOLD_SECS=0" "LAG_P99_THRESHOLD_SECS=3601" "LAG_P99_THRESHOLD_SECS=1.5" "LAG_P99_THRESHOLD_SECS=60s" \
  "PUSH_NO_WRAPPER=yes" "PUSH_WRITE_METADATA=true" "PUSH_WRITE_METADATA=1" \
  "EXECUTION_ENVIRONMENT=gen3" "EXECUTION_ENVIRONMENT=gen2" "SYNC_MEMORY_MIB=64" "AUDIT_MEMORY_MIB=8192" \
  "SYNC_MEMORY_MIB=256Mi" "SCHEMA_HISTORY=${WORK}/no-such-history.toml" "SCHEMA_HISTORY=${TESTS_DIR}/run.sh" \
  "CAPTURE_KINDS=SyncEntity" "CAPTURE_KINDS=Product,SyncTombstone" "CAPTURE_KINDS=Product" "CAPTURE_KINDS=Bad/Kind" \
  "CAPTURE_KINDS=," "SYNC_NAMESPACE=bad/ns"; do
  LOG="${WORK}/bad.log"
  : >"${LOG}"
  status=0
  env PATH="${FAKE_BIN}:${PATH}" FAKE_GCLOUD_STATE="${WORK}/state-bad" FAKE_GCLOUD_LOG="${LOG}" \
    PROJECT_ID=fake-project "${bad}" bash "${DEPLOY_DIR}/up.sh" >"${WORK}/bad.out" 2>&1 || status=$?
  if ((status != 0)) && [[ ! -s ${LOG} ]] && grep -q '^error: ' "${WORK}/bad.out"; then
    pass "${bad} is refused before any gcloud call"
  else
    fail "${bad} is refused before any gcloud call" "status ${status}; $(cat "${WORK}/bad.out")"
  fi
done
deploy fresh state-bad bad-arg up.sh --frobnicate
status_is "an unknown option is refused" 1 bad-arg

echo "== down.sh"
# A second deployment (suffix abc123) shares the external-sync-* topics.
SUFFIX=abc123 deploy fresh state-main up-second up.sh
status_is "a second, suffixed deployment beside the first" 0 up-second
deploy existing state-main down-existing down.sh --yes
status_is "down.sh succeeds" 0 down-existing
for pattern in '^run services delete data-sync-processor ' '^run services delete audit-logger ' \
  '^pubsub subscriptions delete sync-processor ' '^pubsub subscriptions delete audit-logger ' \
  '^pubsub subscriptions delete dlq-processor ' '^pubsub topics delete data-sync-events ' \
  '^pubsub topics delete sync-dead-letters ' '^monitoring dashboards delete ' '^alpha monitoring policies delete ' \
  '^logging metrics delete datastore_sync_conflicts ' '^logging metrics delete datastore_sync_publish_to_apply ' \
  "^projects remove-iam-policy-binding fake-project .*datasync-sync@" \
  "^iam service-accounts delete datasync-invoker@" '^artifacts repositories delete datastore-sync ' \
  '^secrets delete datastore-sync-schema-history '; do
  logged "down.sh deletes: ${pattern#^}" "${pattern}"
done
before "down: services before subscriptions" '^run services delete ' '^pubsub subscriptions delete '
before "down: subscriptions before topics" '^pubsub subscriptions delete ' '^pubsub topics delete '
before "down: topics before the dashboard" '^pubsub topics delete ' '^monitoring dashboards delete '
before "down: dashboard before the alert policy" '^monitoring dashboards delete ' '^alpha monitoring policies delete '
before "down: alert policy before the metric" '^alpha monitoring policies delete ' '^logging metrics delete '
count_logged "down.sh deletes both alert policies" 2 '^alpha monitoring policies delete '
before "down: the lag alert policy before the lag metric" \
  '^alpha monitoring policies delete projects/123456789012/alertPolicies/fake2 ' '^logging metrics delete datastore_sync_publish_to_apply '
before "down: metric before the service accounts" '^logging metrics delete ' '^iam service-accounts delete '
before "down: project grants revoked before the accounts go" '^projects remove-iam-policy-binding ' '^iam service-accounts delete '
before "down: service accounts before the repository" '^iam service-accounts delete ' '^artifacts repositories delete '
not_logged "down.sh leaves the database alone" '^firestore .* (delete|update) '
not_logged "down.sh leaves the other deployment alone" 'abc123'
not_logged "down.sh keeps external topics another deployment publishes to" '^pubsub topics delete external-sync-'
count_logged "down.sh withdraws its own grants on the kept external topics" 3 \
  "^pubsub topics remove-iam-policy-binding external-sync-(create|update|delete) .*--member=serviceAccount:datasync-sync@${SA_DOMAIN} "

SUFFIX=abc123 deploy existing state-suffix down-suffix down.sh --yes
status_is "down.sh with a suffix succeeds" 0 down-suffix
for pattern in '^run services delete data-sync-processor-abc123 ' '^pubsub subscriptions delete sync-processor-abc123 ' \
  '^pubsub topics delete data-sync-events-abc123 ' '^pubsub topics delete external-sync-create ' \
  '^logging metrics delete datastore_sync_conflicts_abc123 ' '^logging metrics delete datastore_sync_publish_to_apply_abc123 ' \
  '^artifacts repositories delete datastore-sync-abc123 '; do
  logged "down.sh with a suffix deletes: ${pattern#^}" "${pattern}"
done

deploy fresh state-empty down-fresh down.sh --yes
status_is "down.sh succeeds when everything is already gone" 0 down-fresh
not_logged "down.sh deletes nothing that is gone" "${MUTATING}"
output_has "down.sh reports no changes" "${WORK}/down-fresh.out" "down: no changes"

deploy existing state-main down-unconfirmed down.sh
status_is "down.sh without --yes and without a terminal refuses" 1 down-unconfirmed
if [[ -s ${LOG} ]]; then fail "an unconfirmed down.sh calls no gcloud" "$(head -n 3 "${LOG}")"; else pass "an unconfirmed down.sh calls no gcloud"; fi

deploy fresh state-dry down-dry down.sh --dry-run
status_is "down.sh --dry-run needs no confirmation" 0 down-dry
if [[ -s ${LOG} ]]; then fail "down.sh --dry-run never calls gcloud" "$(head -n 3 "${LOG}")"; else pass "down.sh --dry-run never calls gcloud"; fi
for command in 'gcloud run services delete data-sync-processor ' 'gcloud pubsub subscriptions delete sync-processor ' \
  'gcloud pubsub topics delete data-sync-events ' 'gcloud pubsub topics delete external-sync-create ' \
  'gcloud monitoring dashboards delete ' 'gcloud alpha monitoring policies delete ' \
  'gcloud logging metrics delete datastore_sync_conflicts ' 'gcloud logging metrics delete datastore_sync_publish_to_apply ' \
  'gcloud projects remove-iam-policy-binding fake-project ' \
  'gcloud iam service-accounts delete datasync-invoker@' 'gcloud artifacts repositories delete datastore-sync ' \
  'gcloud secrets delete datastore-sync-schema-history '; do
  output_has "down.sh --dry-run prints: ${command}" "${WORK}/down-dry.out" "[dry-run] ${command}"
done

echo "== check_binary_libs.sh"
FAKE_LDD="${WORK}/fake-ldd"
mkdir -p "${FAKE_LDD}"
cat >"${FAKE_LDD}/ldd" <<'EOF'
#!/usr/bin/env bash
# Canned ldd output, chosen by the binary's file name.
case $(basename "$1") in
  good)
    printf '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)\n'
    printf '\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f02)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f03)\n'
    printf '\t/lib64/ld-linux-x86-64.so.2 (0x00007f04)\n'
    ;;
  openssl)
    printf '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f01)\n'
    printf '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f03)\n'
    ;;
  missing)
    printf '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f03)\n'
    ;;
  static)
    printf '\tnot a dynamic executable\n'
    exit 1
    ;;
esac
EOF
chmod +x "${FAKE_LDD}/ldd"
for name in good openssl missing static; do : >"${WORK}/${name}"; done
libs() { env PATH="${FAKE_LDD}:${PATH}" bash "${TESTS_DIR}/check_binary_libs.sh" "$@"; }
check "accepts glibc, libgcc_s and the loader" libs "${WORK}/good"
check "accepts a static binary" libs "${WORK}/static"
# rejects NAME STATUS TEXT BINARY...: check_binary_libs.sh exits STATUS and prints TEXT.
rejects() {
  local name=$1 want=$2 text=$3 out status=0
  shift 3
  out=$(libs "$@" 2>&1) || status=$?
  if [[ ${status} == "${want}" ]] && grep -qF -- "${text}" <<<"${out}"; then
    pass "${name}"
  else
    fail "${name}" "status ${status}, output:"$'\n'"${out}"
  fi
}
rejects "rejects libssl, naming it" 1 'libssl.so.3  NOT IN' "${WORK}/good" "${WORK}/openssl"
rejects "rejects a library that is not found" 1 'libfoo.so.1  NOT FOUND' "${WORK}/missing"
rejects "rejects a missing binary" 1 'no such file' "${WORK}/no-such-binary"
rejects "no arguments is a usage error" 2 'Usage:'
if command -v rustc >/dev/null && command -v ldd >/dev/null; then
  printf 'fn main() { println!("hello"); }\n' >"${WORK}/hello.rs"
  if rustc -O -o "${WORK}/hello" "${WORK}/hello.rs" >/dev/null 2>&1; then
    check "accepts a real Rust binary (real ldd)" bash "${TESTS_DIR}/check_binary_libs.sh" "${WORK}/hello"
  else
    fail "a real Rust binary compiles for the ldd check"
  fi
fi

echo
echo "${passed} passed, ${failed} failed"
((failed == 0))
