# A local stand-in for postgres:15 where no registry answers (scripts/stack-images): Debian 12's
# PostgreSQL 15, honouring the official image's contract as compose.yaml uses it:
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB create the cluster on first start in
# PGDATA=/var/lib/postgresql/data (password auth over TCP, listening on all addresses),
# `pg_isready` and `psql` on PATH, root only to fix the data directory's owner, then `postgres`.
FROM grader/debian:bookworm-minbase
# Debian's package creates a cluster "main" on install; the entrypoint makes its own instead.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/grader.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
COPY --chmod=0755 postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL org.opencontainers.image.title="postgres:15 stand-in" \
      org.opencontainers.image.description="Debian 12 postgresql-15, built by grader's scripts/stack-images"
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
VOLUME /var/lib/postgresql/data
# SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave), as upstream.
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
