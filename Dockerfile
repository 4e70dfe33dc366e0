# Multi-stage build of the `sluice` binary. The build step is the same command scripts/up.sh runs
# (`cargo build --release --locked --bin sluice`), so the scripts exercise it on every machine.
# rdkafka builds its bundled librdkafka: it needs a C toolchain, make, perl and zlib headers.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential perl python3 pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/sluice --create-home sluice
COPY --from=builder /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
EXPOSE 8083
ENTRYPOINT ["sluice"]
CMD ["--help"]
