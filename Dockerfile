# syntax=docker/dockerfile:1
# milvus-auth: one image for both processes. The entrypoint is the `milvus-auth` command;
# the Kubernetes manifests pick the subcommand (`proxy` or `operator`) in `args`.
#
#   docker build -t milvus-auth:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm milvus-auth:0.1.0 proxy --help

# Pinned by digest as well as tag: a re-pushed tag cannot change what is built. Update both
# together when rebasing (`docker buildx imagetools inspect python:<tag>` prints the digest).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm@sha256:2199a62885a12290dc9c5be3ca0681d367576ab7bf037da120e564723292a2f0

# Builder: every runtime dependency from requirements.lock (exact versions, and hashes pip
# checks, so a tampered or substituted download fails the build), then the project's own
# wheel without dependencies, into a venv the runtime stage copies whole. All dependencies
# ship manylinux wheels, so no compiler. `make lock` regenerates the lock from pyproject.toml.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY milvus_auth ./milvus_auth
RUN python -m venv /opt/milvus-auth \
    && /opt/milvus-auth/bin/pip install --no-cache-dir --require-hashes --no-deps \
        --only-binary :all: -r requirements.lock \
    && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/milvus-auth/bin/pip install --no-cache-dir --no-deps --no-index /wheels/*.whl \
    && /opt/milvus-auth/bin/pip check \
    && /opt/milvus-auth/bin/pip uninstall --yes pip

# Runtime: the slim interpreter and the venv, nothing else; runs as a numeric non-root user
# so `runAsNonRoot: true` can be verified by the kubelet without a passwd lookup.
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="milvus-auth" \
      org.opencontainers.image.description="Milvus users as Kubernetes objects: an authenticating gRPC proxy and a MilvusUser operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/${PYTHON_IMAGE}"
ENV PATH=/opt/milvus-auth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/milvus-auth /opt/milvus-auth
USER 65532:65532
# 19530 public gRPC, 19529 internal cache RPCs and health, 9090 metrics, 8080 operator liveness.
EXPOSE 19530 19529 9090 8080
ENTRYPOINT ["milvus-auth"]
CMD ["--help"]
