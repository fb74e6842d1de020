#!/usr/bin/env bash
# Runs the product: builds the browser assets (wasm SDK + widget into widget/dist, skipped tools
# already installed), then the chat server with SQLite in ./data, the demo site and an admin agent
# created on first start (the login is printed). Extra arguments go to `wsmschat serve`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/build-web
exec cargo run --release -p wsmschat-server --bin wsmschat -- serve "$@"
