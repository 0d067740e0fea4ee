# syntax=docker/dockerfile:1
# pgsplit container image: release build in the Rust image, run from a slim Debian image as a non-root user.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/pgsplit /usr/local/bin/pgsplit

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system pgsplit \
    && useradd --system --gid pgsplit --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin pgsplit \
    && mkdir -p /etc/pgsplit
COPY --from=builder /usr/local/bin/pgsplit /usr/local/bin/pgsplit
USER pgsplit
# 6432: clients; 9930: /metrics and /healthz when [listen] metrics_addr is set
EXPOSE 6432 9930
ENTRYPOINT ["/usr/local/bin/pgsplit"]
CMD ["--config", "/etc/pgsplit/pgsplit.toml"]
