# The Calculator example (build-examples/calculator) as one image holding
# its three binaries: `worker`, `client` and `demo`. docker-compose.yml runs
# it against a Redis; all three read REDIS_URL.
#
#   docker build -t rpc-calculator .
#   docker run --rm -e REDIS_URL=redis://host:6379/ rpc-calculator worker

# --- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binaries are copied out in the same step because the target
# directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p calculator --bins \
    && mkdir -p /out \
    && cp target/release/worker target/release/client target/release/demo /out/

# --- run --------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates and libssl3 for rediss:// URLs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 rpc
COPY --from=builder /out/ /usr/local/bin/
USER rpc
ENV REDIS_URL=redis://redis:6379/ \
    RUST_LOG=info
CMD ["demo"]
