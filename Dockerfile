# The driftmend controller's image (README.md, "Build the image").
#
#   docker build -t REGISTRY/driftmend:VERSION .
#   docker build --network host --build-arg BASE="$(scripts/base-image.sh)" -t driftmend .
#
# BASE is any Debian image with python3 (3.11 or later) and its venv module. Both stages use
# the same one, so the venv's interpreter link points at the same python3 in both. Pin it:
# an exact version tag at least, a digest (python:3.11.14-slim-bookworm@sha256:...) better.
# Written for the classic builder as well as BuildKit (no cache mounts, no heredocs); BuildKit
# is much the faster of the two (DOCKER_BUILDKIT=1 on a Docker CLI older than 23).
ARG BASE=python:3.11.14-slim-bookworm

# --- builder: a venv with driftmend and its pinned dependencies -------------------------------
FROM ${BASE} AS builder
ARG EXTRAS=gemini
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python3 -m venv /opt/driftmend
# Dependencies first, in a layer that a change to the code leaves cached: they are installed
# through a stub of the package (the real metadata, an empty module), removed again after.
COPY pyproject.toml constraints.txt ./
RUN /opt/driftmend/bin/pip install -q -c constraints.txt --upgrade pip \
 && mkdir driftmend && touch driftmend/__init__.py README.md \
 && /opt/driftmend/bin/pip install -q -c constraints.txt ".[${EXTRAS}]" \
 && /opt/driftmend/bin/pip uninstall -q -y driftmend \
 && rm -rf driftmend README.md build ./*.egg-info
COPY README.md ./
COPY driftmend ./driftmend
# The wheel is built from the context, then installed under the same constraints (they are
# all met already, so nothing else changes). pip and setuptools leave the venv last: the final
# image has no installer and no build tools.
RUN /opt/driftmend/bin/pip wheel -q --no-deps -w /tmp/wheels . \
 && /opt/driftmend/bin/pip install -q -c constraints.txt "$(ls /tmp/wheels/driftmend-*.whl)[${EXTRAS}]" \
 && /opt/driftmend/bin/driftmend --version \
 && /opt/driftmend/bin/pip uninstall -q -y pip setuptools

# --- final: the venv on a clean base, run as a non-root user -----------------------------------
FROM ${BASE}
LABEL org.opencontainers.image.title="driftmend" \
      org.opencontainers.image.description="A desired-state controller that heals a running stack" \
      org.opencontainers.image.licenses="Apache-2.0"
# A numeric USER, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --system --gid 10001 driftmend \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/driftmend --no-create-home \
      --shell /usr/sbin/nologin driftmend \
 && mkdir -p /var/lib/driftmend && chown 10001:10001 /var/lib/driftmend
COPY --from=builder /opt/driftmend /opt/driftmend
# The state dir is the only place driftmend writes (an emptyDir or a volume in a pod), so the
# root filesystem can be read-only; bytecode was compiled at install time.
ENV PATH=/opt/driftmend/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/driftmend \
    DRIFTMEND_STATE_DIR=/var/lib/driftmend \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/driftmend
# dashboard and /metrics, kopf's liveness endpoint, the admission webhook
EXPOSE 8080 8081 9443
ENTRYPOINT ["driftmend"]
CMD ["operator", "--all-namespaces"]
