# sandlot/redis: Debian's redis-server for Sandlot's state, and sandlot-keeper (which takes a deployment's nodes
# down with it). Built by ops/build-sandlot-image like sandlot/sandlot, from the same list and base. It holds no
# Sandlot binary on purpose: an upgrade of the server does not replace this image, so compose does not recreate
# the keeper (which would remove every node) when only Sandlot changes.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY packages.txt install-packages /tmp/sandlot/
RUN /tmp/sandlot/install-packages /tmp/sandlot/packages.txt && rm -rf /tmp/sandlot
COPY sandlot-keeper /usr/local/bin/sandlot-keeper
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes"]
