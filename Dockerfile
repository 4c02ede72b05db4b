# One image for operating the Calculator example (build-examples/calculator):
#
#   worker   serves the Calculator service; `worker --probe ADDR` is its
#            healthcheck (asks /healthz, so the image needs no curl)
#   rpc      the operator's command (rpc-cli): stats, workers, dead letters,
#            replay, pause, and `rpc dashboard`, the web dashboard
#   client   the example's typed client; `demo` both in one process
#
# and the schemas under /usr/share/rpc/schema for the dashboard's typed
# views. Every binary reads REDIS_URL. docker-compose.yml runs them together.
#
#   docker build -t rpc-calculator .
#   docker run --rm -e REDIS_URL=redis://host:6379/ rpc-calculator worker
#   docker run --rm -e REDIS_URL=redis://host:6379/ rpc-calculator rpc stats

# --- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The commit the image is built from, in rpc_build_info{revision}
# (`docker compose build --build-arg RPC_GIT_REVISION=$(git rev-parse HEAD)`);
# empty reads as "unknown".
ARG RPC_GIT_REVISION=""
ENV RPC_GIT_REVISION=$RPC_GIT_REVISION
# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binaries are copied out in the same step because the target
# directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p calculator --bins -p rpc-cli --bin rpc \
    && mkdir -p /out \
    && cp target/release/worker target/release/client target/release/demo \
          target/release/rpc /out/

# --- run --------------------------------------------------------------------
FROM debian:bookworm-slim
# The binaries link only libc (TLS is rustls); ca-certificates is the trust
# store rustls reads for rediss:// and https:// endpoints. Nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 rpc
COPY --from=builder /out/ /usr/local/bin/
COPY schema/ /usr/share/rpc/schema/
USER rpc
ENV REDIS_URL=redis://redis:6379/ \
    RUST_LOG=info
CMD ["demo"]
