# One image, several commands (see docker-compose.yml): `batchway api`, `python worker.py` (or
# `batchway worker`), `batchway temporal setup`, `batchway simulate` and the operator commands
# (`batchway orgs ...`). Each handles SIGTERM itself as PID 1: a worker finishes its running activities
# within BATCHWAY_SHUTDOWN_GRACE_SECONDS and exits 0, the API finishes requests in flight.
FROM python:3.11-slim

# Logs reach `docker logs` as they are written, not when a buffer fills.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid, so volume ownership and orchestrators' runAsNonRoot checks are predictable.
RUN groupadd --system --gid 10001 batchway \
    && useradd --system --uid 10001 --gid batchway --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin batchway

WORKDIR /app
# What the wheel is built from ([tool.hatch.build.targets.wheel] in pyproject.toml); worker.py also stays
# in /app so that `python worker.py` works from the working directory.
COPY pyproject.toml README.md worker.py ./
COPY api api
COPY workflows workflows
COPY activities activities
COPY batchway batchway
RUN pip install --no-cache-dir .

# The data dir holds nothing in the compose deployment (PostgreSQL and S3); it must still be writable,
# for SQLite or a local blob folder in smaller setups. A named volume mounted here starts with this owner.
RUN mkdir /data && chown batchway:batchway /data
ENV BATCHWAY_DATA_DIR=/data

USER 10001:10001
EXPOSE 8000
CMD ["batchway", "api", "--host", "0.0.0.0"]
