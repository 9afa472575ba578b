#!/usr/bin/env bash
# Runs scripts/kafka-compat/node/compat.js (kafkajs from npm, installed on
# first use into a cache directory) against BOOTSTRAP. Exit code: the
# number of failed steps (0: all passed).
#   scripts/kafka-compat/run-node.sh BOOTSTRAP [admin|produce|group ...]
set -euo pipefail
dir=$(cd "$(dirname "$0")/node" && pwd)
mods=${KAFKA_COMPAT_NODE:-$HOME/.cache/sluice/kafka-compat-node}
[ $# -ge 1 ] || { echo "usage: $0 BOOTSTRAP [steps...]" >&2; exit 2; }
if [ ! -f "$mods/node_modules/kafkajs/package.json" ]; then
	mkdir -p "$mods"
	npm install --silent --no-audit --no-fund --prefix "$mods" kafkajs@2.2.4 >&2
fi
NODE_PATH="$mods/node_modules" exec node "$dir/compat.js" "$@"
