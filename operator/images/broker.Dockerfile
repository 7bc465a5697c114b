# syntax=docker/dockerfile:1.7
# The Strait broker image, as the operator runs it (`/bin/sh -c "exec strait-broker --config
# /etc/strait/server.properties --override ..."`, data in /var/lib/strait). It also holds
# `strait-mirror`, which the operator runs for Mirror resources (`strait-mirror --config
# /etc/strait-mirror/mm2.properties --metrics-addr 0.0.0.0:9404`). Build from the
# repository root:
#   docker build -f operator/images/broker.Dockerfile -t strait-broker .
# Stage 1 compiles; stage 2 is Debian slim (the start command needs a shell) with a non-root
# user 65532 owning the data directory.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake perl pkg-config protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strait-broker --bin strait-broker -p strait-mirror --bin strait-mirror \
    && install -D -m 0755 target/release/strait-broker /out/strait-broker \
    && install -D -m 0755 target/release/strait-mirror /out/strait-mirror

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 strait \
    && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin strait \
    && install -d -o 65532 -g 65532 /var/lib/strait /etc/strait
COPY --from=build /out/strait-broker /usr/local/bin/strait-broker
COPY --from=build /out/strait-mirror /usr/local/bin/strait-mirror
USER 65532:65532
WORKDIR /var/lib/strait
VOLUME ["/var/lib/strait"]
# Client listener, inter-broker listener, metrics and /ready (strait-mirror: metrics on 9404).
EXPOSE 9092 9091 9404
ENTRYPOINT ["/usr/local/bin/strait-broker"]
