// kafkajs (a pure JavaScript Kafka client, from npm) against a
// Kafka-protocol endpoint: the same steps as the Java and Python checks
// (admin, idempotent produce, a consumer group reading in order per key
// with commits). kafkajs has no assign mode: its consumer is always a
// group member, so "consume" and "group" are one step here, "group".
// Prints "ok STEP ..." or "FAIL STEP ..."; exits with the number of failed
// steps.
//
//     node compat.js BOOTSTRAP [admin produce group]
'use strict';
const crypto = require('crypto');
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const RECORDS = 2000;
const BATCH = 100;
// kafkajs compresses only with gzip unless a codec package is added.
const CODECS = [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]];

async function main() {
  if (process.argv.length < 3) {
    console.error('usage: compat.js BOOTSTRAP [steps...]');
    return 2;
  }
  const bootstrap = process.argv[2];
  const asked = process.argv.slice(3);
  const steps = new Set(asked.length ? asked : ['admin', 'produce', 'group']);
  const topic = 'compat-js-' + crypto.randomBytes(6).toString('hex');
  const kafka = new Kafka({ clientId: 'sluice-compat', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  let failures = 0;

  async function step(name, fn) {
    if (!steps.has(name)) return;
    try {
      console.log(`ok ${name} ${await fn()}`);
    } catch (e) {
      failures++;
      console.log(`FAIL ${name} ${e && e.stack ? e.stack.split('\n')[0] : e}`);
    }
  }

  const admin = kafka.admin();
  await admin.connect();
  try {
    await step('admin', async () => {
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true, timeout: 30000 });
      const md = await admin.fetchTopicMetadata({ topics: [topic] });
      const parts = md.topics[0].partitions.length;
      if (parts !== 3) throw new Error(`topic listed with ${parts} partitions`);
      const cluster = await admin.describeCluster();
      return `topic ${topic}, 3 partitions, ${cluster.brokers.length} broker(s)`;
    });

    await step('produce', async () => {
      const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      let n = 0;
      try {
        for (const [name, codec] of CODECS) {
          for (let b = 0; b < RECORDS / CODECS.length / BATCH; b++) {
            const messages = [];
            for (let i = 0; i < BATCH; i++, n++) {
              messages.push({ key: `k${n % 17}`, value: `${name}-${n}` });
            }
            await p.send({ topic, acks: -1, compression: codec, messages });
          }
        }
      } finally {
        await p.disconnect();
      }
      return `${n} records, idempotent, acks=all, codecs ${CODECS.map((c) => c[0]).join(',')}`;
    });

    await step('group', async () => {
      const groupId = topic + '-g';
      const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 });
      await c.connect();
      const last = new Map();
      let got = 0;
      let bad = null;
      try {
        await c.subscribe({ topic, fromBeginning: true });
        const done = new Promise((resolve) => {
          c.run({
            autoCommit: true,
            eachMessage: async ({ message }) => {
              const k = message.key.toString();
              const seq = Number(message.value.toString().split('-')[1]);
              if (last.has(k) && last.get(k) >= seq && !bad) bad = `key ${k}: ${seq} after ${last.get(k)}`;
              last.set(k, seq);
              if (++got >= RECORDS) resolve();
            },
          });
        });
        const timeout = new Promise((resolve) => setTimeout(resolve, 60000));
        await Promise.race([done, timeout]);
        await c.commitOffsets([]).catch(() => {});
      } finally {
        await c.disconnect();
      }
      if (bad) throw new Error(bad);
      if (got !== RECORDS) throw new Error(`read ${got} of ${RECORDS}`);
      const offs = await admin.fetchOffsets({ groupId, topics: [topic] });
      const total = offs[0].partitions.reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
      if (total !== RECORDS) throw new Error(`commits sum to ${total}, want ${RECORDS}`);
      return `${got} records through a group in order per key, commits sum to ${total}`;
    });

    await step('admin', async () => {
      await admin.deleteTopics({ topics: [topic], timeout: 30000 });
      return `deleted ${topic}`;
    });
  } finally {
    await admin.disconnect();
  }
  return failures;
}

main().then((n) => process.exit(n), (e) => {
  console.error(e);
  process.exit(100);
});
