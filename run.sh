#!/usr/bin/env bash
# Runs the product: the chat server with SQLite in ./data, the demo site and an admin agent
# created on first start (the login is printed). Extra arguments go to `wsmschat serve`.
set -euo pipefail
cd "$(dirname "$0")"
exec cargo run --release -p wsmschat-server --bin wsmschat -- serve "$@"
