#!/usr/bin/env bash
# Create the Artifact Registry repository and build the function images with
# Cloud Build (sync, audit, and capture with CAPTURE_KINDS) (deploy/cloudbuild.yaml, the Dockerfile with --build-arg FUNCTION).
# An image whose tag is already in the repository is not rebuilt; the tag is
# IMAGE_TAG, or the commit plus a hash of uncommitted changes to the sources.
#
# Usage: PROJECT_ID=my-project [IMAGE_TAG=v1] deploy/images.sh [--dry-run]

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_args "$@"
init_config

log "Images in ${IMAGE_BASE}:"
if exists artifacts repositories describe "${AR_REPO}" "--location=${REGION}" --format='value(name)'; then
  unchanged "repository ${AR_REPO}"
else
  gcloud_change artifacts repositories create "${AR_REPO}" --repository-format=docker \
    "--location=${REGION}" "--description=datastore-sync function images"
  changed "created repository ${AR_REPO} in ${REGION}"
fi

functions=(sync audit)
((!CAPTURE)) || functions+=(capture)
for function in "${functions[@]}"; do
  image=$(image_uri "${function}")
  if exists artifacts docker images describe "${image}" --format='value(image_summary.digest)'; then
    unchanged "image ${image}"
  else
    gcloud_change builds submit "${REPO_ROOT}" "--config=${DEPLOY_DIR}/cloudbuild.yaml" \
      "--substitutions=_FUNCTION=${function},_IMAGE=${image}"
    changed "built ${image}"
  fi
done
finish
