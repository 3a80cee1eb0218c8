# syntax=docker/dockerfile:1
# leadsync: `leadsync run` (scheduler + lead API) as a non-root user, state on /data.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/leadsync
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY engine ./engine
COPY state ./state
COPY service ./service
RUN /opt/leadsync/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/leadsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LEADSYNC_CONFIG=/etc/leadsync/leadsync.yaml \
    LEADSYNC_STORE__URL=sqlite:////data/leadsync.db \
    LEADSYNC_API__HOST=0.0.0.0 \
    LEADSYNC_API__PORT=8787
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin leadsync \
    && mkdir -p /data /etc/leadsync && chown leadsync:leadsync /data
COPY --from=build /opt/leadsync /opt/leadsync
COPY config.example.yaml /etc/leadsync/leadsync.yaml
COPY examples /etc/leadsync/examples
USER leadsync
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('LEADSYNC_API__PORT', '8787'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4).status == 200 else 1)"]
# SIGTERM stops it cleanly (exit 0); give it daemon.shutdown_grace: docker stop -t 60
STOPSIGNAL SIGTERM
ENTRYPOINT ["leadsync"]
CMD ["run"]
