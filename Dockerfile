# Build and run wallet-server on Debian 12 with Swift 6.
# (Not built in CI: the CI machines have no Docker engine.)
# 6.2 at least: swift-log, swift-prometheus and swift-w3c-trace-context need
# tools version 6.2 (CI and development use 6.3.1).
FROM swift:6.2-bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libgrpc-dev libprotobuf-c-dev libpq-dev libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources Sources
RUN swift build -c release --product wallet-server --static-swift-stdlib

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      libgrpc29 libprotobuf-c1 libpq5 libssl3 ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 wallet
COPY --from=build /src/.build/release/wallet-server /usr/local/bin/wallet-server
USER wallet
EXPOSE 50051
# DATABASE_URL must be set: the embedded Postgres is for development only.
# 0.0.0.0 needs TLS: mount the files and set WALLET_TLS_CERT, WALLET_TLS_KEY,
# WALLET_TLS_CLIENT_CA and WALLET_PERMISSIONS (docs/operations.md); the
# server refuses plaintext off loopback unless WALLET_ALLOW_INSECURE=1.
# Metrics are off by default; WALLET_METRICS_LISTEN=0.0.0.0:9464 (and
# publishing that port) lets a Prometheus outside the container scrape them.
# Logs are JSON lines on stderr (WALLET_LOG_LEVEL, default info).
ENTRYPOINT ["/usr/local/bin/wallet-server"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
