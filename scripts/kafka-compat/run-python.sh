#!/usr/bin/env bash
# Runs scripts/kafka-compat/python/compat.py (confluent-kafka from PyPI,
# librdkafka inside its wheel, in a virtualenv made on first use) against
# BOOTSTRAP. Exit code: the number of failed steps (0: all passed).
#   scripts/kafka-compat/run-python.sh BOOTSTRAP [admin|produce|consume|group ...]
set -euo pipefail
dir=$(cd "$(dirname "$0")/python" && pwd)
venv=${KAFKA_COMPAT_VENV:-$HOME/.cache/sluice/kafka-compat-venv}
[ $# -ge 1 ] || { echo "usage: $0 BOOTSTRAP [steps...]" >&2; exit 2; }
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
	python3 -m venv "$venv" >&2
	"$venv/bin/pip" install -q 'confluent-kafka>=2.6,<3' >&2
fi
exec "$venv/bin/python" "$dir/compat.py" "$@"
