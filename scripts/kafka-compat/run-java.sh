#!/usr/bin/env bash
# Builds scripts/kafka-compat/java (Apache Kafka's Java client, from Maven
# Central) and runs it against BOOTSTRAP: admin, idempotent produce with
# every codec, consume, and a consumer group with commits, over the classic
# protocol (group) and KIP-848's (group-consumer). Exit code: the number
# of failed steps (0: all passed).
#   scripts/kafka-compat/run-java.sh BOOTSTRAP [admin|produce|consume|group|group-consumer|acls|records ...]
set -euo pipefail
dir=$(cd "$(dirname "$0")/java" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 BOOTSTRAP [steps...]" >&2; exit 2; }
if [ ! -f "$dir/target/.built" ] || [ "$dir/src/main/java/sluice/Compat.java" -nt "$dir/target/.built" ]; then
	(cd "$dir" && mvn -q -B package dependency:copy-dependencies -DoutputDirectory=target/libs) >&2
	touch "$dir/target/.built"
fi
exec java -cp "$dir/target/classes:$dir/target/libs/*" sluice.Compat "$@"
