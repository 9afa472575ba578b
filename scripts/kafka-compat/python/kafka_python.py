"""kafka-python (Debian's python3-kafka, a pure-Python client that sends
old versions: Metadata v0-1, JoinGroup v2, OffsetCommit v2, OffsetFetch
v1) against a Kafka-protocol endpoint: produce, then consume through a
consumer group and commit. Prints "ok STEP ..." or "FAIL STEP ...";
exits with the number of failed steps.

    /usr/bin/python3 kafka_python.py BOOTSTRAP
"""
import sys
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

RECORDS = 300


def main() -> int:
    bootstrap = sys.argv[1]
    topic = "compat-kp-" + uuid.uuid4().hex[:12]
    failures = 0

    def step(name, fn):
        nonlocal failures
        try:
            print(f"ok {name} {fn()}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures += 1
            print(f"FAIL {name} {e!r}", flush=True)

    def produce():
        KafkaAdminClient(bootstrap_servers=bootstrap).create_topics([NewTopic(topic, 3, 1)])
        p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(RECORDS):
            p.send(topic, key=b"k%d" % (i % 17), value=b"%d" % i)
        p.flush(30)
        p.close()
        return f"{RECORDS} records to {topic}"

    def group():
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic + "-g", auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=10000)
        seen = set()
        for m in c:
            seen.add(m.value)
            if len(seen) == RECORDS:
                break
        c.commit()
        total = sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(3))
        c.close()
        if len(seen) != RECORDS or total != RECORDS:
            raise RuntimeError(f"group read {len(seen)}, commits sum to {total}")
        return f"{len(seen)} records through a group, commits sum to {total}"

    step("produce", produce)
    step("group", group)
    return failures


if __name__ == "__main__":
    sys.exit(main())
