# streamproc's image: `docker build -t streamproc .` (scripts/release-check builds and
# smoke-tests it where Docker runs). Two stages: the builder makes the wheel from the
# sources; the runtime installs that wheel with every runtime extra (uvloop, tracing, MSK
# IAM), each dependency at the version constraints.txt pins, and nothing else.
#
# The base is pinned by version (Python 3.11, the version CI tests, on Debian 12). Pin it by
# digest too in your own build for byte-identical rebuilds:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm   # prints the digest
# then FROM python:3.11.14-slim-bookworm@sha256:<digest>. Not here: an image digest moves
# with each Debian security rebuild of the tag, and a stale one would keep those fixes out.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY streamproc ./streamproc
# The wheel only (--no-deps): dependencies are the runtime stage's, from constraints.txt.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheel comes from the builder by a bind mount (BuildKit, Docker's builder since 23.0),
# so no layer keeps a copy of it.
RUN --mount=type=bind,from=builder,source=/dist,target=/tmp/dist \
    --mount=type=bind,source=constraints.txt,target=/tmp/constraints.txt \
    pip install --no-cache-dir --constraint /tmp/constraints.txt \
      "$(ls /tmp/dist/streamproc-*.whl)[all]" \
    && streamproc --version
# A user of its own, not root: the process needs no file it did not bring. Kubernetes
# manifests run as this uid (deploy/kubernetes, deploy/helm).
RUN groupadd --system --gid 10001 streamproc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home streamproc
USER 10001
# /metrics, /healthz, /readyz, /status (and Clay callbacks)
EXPOSE 8080
# Liveness of `streamproc run`: its ops server's /healthz answers while the event loop
# serves (streamproc/ops/http.py). python, not curl: the slim image has no curl. A command
# other than `run` (e.g. `topics create`) serves no /healthz; it is not a long-lived service.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('STREAMPROC_HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["streamproc"]
CMD ["run"]
