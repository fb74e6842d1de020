# wsmschat server image: one self-contained binary (the widget, SDK, console and demo page are
# built first and embedded in it by server/build.rs), on a slim base.
# UNTESTED on the machine this was written on (no Docker engine there); the build stage runs the
# same steps as `./run.sh`: scripts/build-web, then cargo build --release.
FROM rust:1.95-bookworm AS build
# Node.js + npm for the web build tools (binaryen's wasm-opt, esbuild, from package-lock.json).
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The web assets (installs the wasm32 target, wasm-bindgen-cli and the npm tools it needs),
# then the server, which embeds them.
RUN scripts/build-web \
    && cargo build --release -p wsmschat-server --bin wsmschat \
    && test -f widget/dist/widget.js && test -f console/dist/index.html

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/wsmschat wsmschat && mkdir -p /var/lib/wsmschat \
    && chown wsmschat /var/lib/wsmschat
COPY --from=build /src/target/release/wsmschat /usr/local/bin/wsmschat
USER wsmschat
# Static files come from the binary; WSMSCHAT_WIDGET_DIR / _CONSOLE_DIR / _SDK_DIR / _DEMO_DIR
# point at a mounted folder to override one (a customised console, say).
ENV WSMSCHAT_DATA_DIR=/var/lib/wsmschat \
    WSMSCHAT_LISTEN=0.0.0.0:8080 \
    WSMSCHAT_DEMO_LISTEN=0.0.0.0:8081
EXPOSE 8080 8081
# Orchestrators: GET /healthz (liveness) and /readyz (database + Redis) on port 8080.
ENTRYPOINT ["wsmschat", "serve"]
