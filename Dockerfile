# One image recipe for the three Cloud Run functions.
#
#   docker build --build-arg FUNCTION=sync    -t sync-function .
#   docker build --build-arg FUNCTION=audit   -t audit-function .
#   docker build --build-arg FUNCTION=capture -t capture-function .
#
# The builder and the runtime are both Debian 12 (bookworm), so the glibc the
# binary was linked against is the one it runs on. The image carries no
# configuration: Cloud Run provides PORT and the deploy scripts the rest.
#
# Dependencies are cached with cargo-chef: the planner reduces the workspace to
# a recipe (manifests, lock file, target list), the builder compiles the
# dependencies from the recipe alone, then the sources. No crate is named here,
# so adding a workspace member needs no change to this file.
# scripts/check-image.sh replays these stages without a container engine.

# The toolchain the workspace is built and tested with (rust-version is the floor).
ARG RUST_VERSION=1.95.0
# The one pin of cargo-chef: scripts/tools.sh installs this same version.
ARG CARGO_CHEF_VERSION=0.1.78

# The official Rust image plus cargo-chef from crates.io, rather than the
# lukemathwalker/cargo-chef image: the toolchain stays the official image the
# tests use, every piece comes from a registry this project already relies on,
# and the install step is the one scripts/tools.sh runs, so it is tested here.
FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG FUNCTION
RUN case "${FUNCTION}" in \
      sync|audit|capture) ;; \
      *) echo "FUNCTION must be sync, audit or capture (got '${FUNCTION}')" >&2; exit 1 ;; \
    esac
# 1. Dependencies, in a layer of their own: only the recipe decides it, so
#    editing sources does not rebuild the dependency graph.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p "${FUNCTION}-function"
# 2. The real sources (cargo-chef has already dropped its stand-ins for the
#    workspace's own crates from the target directory, so they are rebuilt).
COPY . .
RUN cargo build --release --locked -p "${FUNCTION}-function" \
 && cp "target/release/${FUNCTION}-function" /function

# Runtime: glibc, libgcc, CA certificates and tzdata, no shell. 65532 is the
# image's nonroot user, given by number so that a runtime can verify it.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /function /function
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/function"]
