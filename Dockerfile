# The Aegis image: one image for every role (control plane, model server, pipeline steps, backup
# and restore Jobs). Build it from the repository root:
#   docker build -t <registry>/aegis:0.1.0 .
# The runtime stage is the folder scripts/image-layout.sh makes; CI runs that folder
# (scripts/image-smoke.sh) because the development machines have no container engine.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
# No install scripts: the `node` devDependency would download a second Node; the image's is 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY examples ./examples
COPY scripts/image-layout.sh ./scripts/
RUN npm run build && scripts/image-layout.sh /app

FROM ${NODE_IMAGE}
# pg_dump / pg_restore for `aegis db backup|restore|drill` on PostgreSQL. Use your server's major
# version (PG_MAJOR): pg_dump refuses a newer server, and a newer pg_dump's output is not promised to
# load into an older server. PGDG packages, for the Debian release of the base image.
ARG PG_MAJOR=17
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSo /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    . /etc/os-release; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    apt-get purge -y curl gnupg; apt-get autoremove -y; rm -rf /var/lib/apt/lists/*
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}" \
    NODE_ENV=production \
    AEGIS_HOME=/var/lib/aegis
COPY --from=build /app /app
RUN install -d -o node -g node /var/lib/aegis /var/cache/aegis
WORKDIR /app
# uid/gid 1000 (`node`): the manifests under deploy/kubernetes run as 1000 on a read-only root.
USER 1000:1000
ENTRYPOINT ["node", "/app/bin/aegis.js"]
CMD ["--help"]
