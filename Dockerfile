# qbo-backfill and qbo-sim in one small image.
#
#   docker build -t qbo-backfill:local .
#   docker run --rm qbo-backfill:local --help
#
# docker-compose.yml builds and runs this image (see docs/DEPLOY.md). The Rust version below must
# match `rust-version` in the workspace Cargo.toml (a test in crates/qbo-backfill/tests/it/deploy.rs
# checks it, together with the rest of this file).

# ---- build ----------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder

# The slim image has gcc and libc headers: all ring (TLS) needs; nothing else is installed.
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates

# The registry and target directories are BuildKit cache mounts: a rebuild after a code change
# recompiles only the workspace crates. The binaries are copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p qbo-backfill -p qbo-sim \
 && mkdir -p /out \
 && cp target/release/qbo-backfill target/release/qbo-sim /out/

# ---- runtime --------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="qbo-backfill" \
      org.opencontainers.image.description="Loads QuickBooks Online history into PostgreSQL; web UI and JSON API on port 6789" \
      org.opencontainers.image.licenses="MIT"

# ca-certificates: TLS to Intuit and to a managed PostgreSQL. wget: the HEALTHCHECK below (about
# 3.5 MB on bookworm-slim, a third of what curl brings with its libraries).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates wget \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root user; its home is the data directory that holds the secret key file.
RUN groupadd --system --gid 10001 qbo \
 && useradd --system --uid 10001 --gid qbo --home-dir /var/lib/qbo-backfill --no-create-home \
      --shell /usr/sbin/nologin qbo \
 && install -d -o qbo -g qbo -m 0700 /var/lib/qbo-backfill

COPY --from=builder /out/qbo-backfill /out/qbo-sim /usr/local/bin/

# The key that encrypts the secrets stored in PostgreSQL is created here on first start (mode
# 0600). Keep this directory on a volume and back it up: without the key the stored secrets
# cannot be read. QBO_BACKFILL_SECRET_KEY (base64 of 32 bytes), when set, wins over the file.
ENV QBO_BACKFILL_KEY_FILE=/var/lib/qbo-backfill/secret.key \
    QBO_BACKFILL_BIND=0.0.0.0:6789 \
    HOME=/var/lib/qbo-backfill
VOLUME ["/var/lib/qbo-backfill"]
WORKDIR /var/lib/qbo-backfill
USER 10001:10001

EXPOSE 6789

# `serve` answers GET /healthz with 200 when the database answers. Containers that run something
# else from this image (`worker`, `qbo-sim`) override or disable this check (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["wget", "-q", "-T", "4", "--tries=1", "-O", "/dev/null", "http://127.0.0.1:6789/healthz"]

ENTRYPOINT ["qbo-backfill"]
CMD ["serve", "--bind", "0.0.0.0:6789"]
