# syntax=docker/dockerfile:1
# The one image that docker-compose.yml's migrate, worker and demo services run: pgqueue installed,
# a non-root user, no source tree. Build it with `docker compose up --build` (or `docker build .`).
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# The build context is mounted read-only, so none of it ends up in a layer. Building the package writes
# pgqueue.egg-info and build/ next to the sources, so pip builds from a scratch copy, removed after.
# tests/test_docker.py runs this command on a read-only copy of the context that .dockerignore leaves.
RUN --mount=type=bind,target=/context \
    build="$(mktemp -d)" \
    && cp -R /context/. "$build" \
    && pip install "$build" \
    && rm -rf "$build"

RUN useradd --create-home --uid 10001 --user-group pgqueue
# The pgqueue user, by number so that a runtime (Kubernetes' runAsNonRoot) can tell that it is not root.
USER 10001:10001
# `pgqueue worker` puts the directory it starts in on sys.path: an empty one, the user's home.
WORKDIR /home/pgqueue

CMD ["pgqueue", "--help"]
