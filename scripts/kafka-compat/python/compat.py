"""confluent-kafka (librdkafka) against a Kafka-protocol endpoint: the
same steps as the Java check (admin, idempotent produce with every codec,
consume in order per key, a consumer group with commits). Prints
"ok STEP ..." or "FAIL STEP ..."; exits with the number of failed steps.

    python3 compat.py BOOTSTRAP [admin produce consume group]
"""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RECORDS = 2000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: compat.py BOOTSTRAP [steps...]", file=sys.stderr)
        return 2
    bootstrap = sys.argv[1]
    steps = set(sys.argv[2:]) or {"admin", "produce", "consume", "group"}
    topic = "compat-py-" + uuid.uuid4().hex[:12]
    failures = 0

    def step(name, fn):
        nonlocal failures
        if name not in steps:
            return
        try:
            print(f"ok {name} {fn()}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures += 1
            print(f"FAIL {name} {e!r}", flush=True)

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def create():
        for f in admin.create_topics([NewTopic(topic, num_partitions=3)], operation_timeout=30).values():
            f.result(30)
        md = admin.list_topics(timeout=30)
        if topic not in md.topics or len(md.topics[topic].partitions) != 3:
            raise RuntimeError(f"topic not listed with 3 partitions: {list(md.topics)}")
        return f"topic {topic}, 3 partitions, {len(md.brokers)} broker(s)"

    def produce():
        n = 0
        for codec in CODECS:
            p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                          "compression.type": codec, "linger.ms": 5})
            errors = []
            for _ in range(RECORDS // len(CODECS)):
                p.produce(topic, key=f"k{n % 17}", value=f"{codec}-{n}",
                          on_delivery=lambda err, msg: err and errors.append(err))
                n += 1
                p.poll(0)
            if p.flush(30) != 0 or errors:
                raise RuntimeError(f"{codec}: undelivered or errors: {errors[:3]}")
        return f"{n} records, idempotent, acks=all, codecs {','.join(CODECS)}"

    def read(consumer, want):
        got, last = 0, {}
        deadline = time.time() + 60
        while got < want and time.time() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            seq = int(m.value().decode().split("-")[1])
            k = m.key().decode()
            if k in last and last[k] >= seq:
                raise RuntimeError(f"key {k}: {seq} after {last[k]}")
            last[k] = seq
            got += 1
        return got

    def consume():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + topic, "enable.auto.commit": False})
        try:
            c.assign([TopicPartition(topic, p, -2) for p in range(3)])  # -2: the beginning
            got = read(c, RECORDS)
        finally:
            c.close()
        if got != RECORDS:
            raise RuntimeError(f"read {got} of {RECORDS}")
        return f"{got} records in order per key"

    def group():
        g = topic + "-g"
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": g, "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        try:
            c.subscribe([topic])
            got = read(c, RECORDS)
            c.commit(asynchronous=False)
            committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
        finally:
            c.close()
        total = sum(tp.offset for tp in committed if tp.offset >= 0)
        if got != RECORDS or total != RECORDS:
            raise RuntimeError(f"group read {got}, commits sum to {total}")
        return f"{got} records through a group, commits sum to {total}"

    def delete():
        for f in admin.delete_topics([topic], operation_timeout=30).values():
            f.result(30)
        return f"deleted {topic}"

    step("admin", create)
    step("produce", produce)
    step("consume", consume)
    step("group", group)
    step("admin", delete)
    return failures


if __name__ == "__main__":
    sys.exit(main())
