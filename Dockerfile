# The raftkv image, for people with a container registry:
#   docker build -t raftkv:0.1.0 .
# One image holds the member (raftkv), the diag CLI, the operator (raftkv-operator) and
# etcdctl 3.6.16; it runs as uid 10001 in /var/lib/raftkv.
#
# The project's own tests build the same image without any registry
# (scripts/kind/raftkv-image.sh: Debian python3 in a debootstrap chroot, the same venv
# layout, user, workdir and healthcheck), so keep the two in step.
#
# Build a different distribution version (the e2e upgrade tests use 0.1.0 and 0.1.1):
#   docker build --build-arg RAFTKV_VERSION=0.1.1 -t raftkv:0.1.1 .

ARG ETCD_VERSION=v3.6.16

FROM gcr.io/etcd-development/etcd:${ETCD_VERSION} AS etcd

FROM debian:bookworm-slim AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/raftkv
WORKDIR /src
COPY . .
ARG RAFTKV_VERSION=""
# the wheel's version is the tag's (importlib.metadata.version("raftkv") reports it)
RUN if [ -n "$RAFTKV_VERSION" ]; then \
      sed -i "s/^version = \".*\"$/version = \"$RAFTKV_VERSION\"/" pyproject.toml; fi \
 && /opt/raftkv/bin/pip install --no-cache-dir .

FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 raftkv \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/raftkv --no-create-home \
      --shell /usr/sbin/nologin raftkv \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/raftkv
COPY --from=build /opt/raftkv /opt/raftkv
COPY --from=etcd /usr/local/bin/etcdctl /usr/local/bin/etcdctl
ENV PATH=/opt/raftkv/bin:/usr/local/bin:/usr/bin:/bin PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/raftkv
EXPOSE 2379 2380 2381
# liveness of a member: /livez on its --listen-metrics-urls (override RAFTKV_LIVEZ_URL)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/opt/raftkv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('RAFTKV_LIVEZ_URL', 'http://127.0.0.1:2381/livez'), timeout=2)"]
CMD ["raftkv", "--help"]
