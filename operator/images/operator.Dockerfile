# syntax=docker/dockerfile:1.7
# The Strait operator image. Build from the repository root:
#   docker build -f operator/images/operator.Dockerfile -t strait-operator .
# Stage 1 compiles in the official Rust image (aws-lc-sys needs a C toolchain, cmake and perl);
# stage 2 is distroless with glibc, running as the non-root user 65532.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake perl pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strait-operator --bin strait-operator \
    && install -D -m 0755 target/release/strait-operator /out/strait-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/strait-operator /usr/local/bin/strait-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/strait-operator"]
