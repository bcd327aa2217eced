# A local stand-in for redis:7 where no registry answers (scripts/stack-images): Debian 12's
# Redis 7.0 with what compose.yaml relies on from the official image: `redis-server` and
# `redis-cli` on PATH, /data as the working (AOF) directory, the unprivileged user `redis`, and
# protected mode off (the official image compiles it off: other containers reach it without a
# password, so publish its port on loopback or a private address only).
FROM grader/debian:bookworm-minbase
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY --chmod=0755 redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL org.opencontainers.image.title="redis:7 stand-in" \
      org.opencontainers.image.description="Debian 12 redis-server, built by grader's scripts/stack-images"
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
