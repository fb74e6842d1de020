# wsmschat server image. UNTESTED on the machine this was written on (no Docker engine there);
# the same steps are what `./run.sh` does.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p wsmschat-server --bin wsmschat

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/wsmschat wsmschat && mkdir -p /var/lib/wsmschat \
    && chown wsmschat /var/lib/wsmschat
COPY --from=build /src/target/release/wsmschat /usr/local/bin/wsmschat
# Static apps (widget, console, demo page) when they have been built into the context.
COPY --from=build /src/examples/embed /opt/wsmschat/demo
USER wsmschat
ENV WSMSCHAT_DATA_DIR=/var/lib/wsmschat \
    WSMSCHAT_LISTEN=0.0.0.0:8080 \
    WSMSCHAT_WIDGET_DIR=/opt/wsmschat/widget \
    WSMSCHAT_CONSOLE_DIR=/opt/wsmschat/console \
    WSMSCHAT_SDK_DIR=/opt/wsmschat/sdk \
    WSMSCHAT_DEMO_DIR=/opt/wsmschat/demo
EXPOSE 8080
# Orchestrators: GET /healthz (liveness) and /readyz (database + Redis) on port 8080.
ENTRYPOINT ["wsmschat", "serve"]
