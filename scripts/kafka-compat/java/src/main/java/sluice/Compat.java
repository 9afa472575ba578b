package sluice;

import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

/**
 * Apache Kafka's Java client against a Kafka-protocol endpoint (sluice's
 * Kafka listener, or a real Kafka broker for reference). Each step prints
 * "ok STEP ..." or "FAIL STEP ..."; the exit code is the number of failed
 * steps. Usage: Compat BOOTSTRAP [steps...], steps among admin, produce,
 * consume, group (the classic protocol), group-consumer (KIP-848's,
 * group.protocol=consumer) (default: these), acls (create, describe and
 * delete an ACL), records (deleteRecords on partition 0, after produce)
 * share (KIP-932 share consumers) and share-offsets (the AdminClient's
 * share-group offset calls).
 */
public final class Compat {
  static final int RECORDS = 2000;
  static int failures = 0;

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: Compat BOOTSTRAP [admin|produce|consume|group|group-consumer|acls|records|share|share-offsets ...]");
      System.exit(2);
    }
    String bootstrap = args[0];
    Set<String> steps = new HashSet<>(Arrays.asList(args).subList(1, args.length));
    if (steps.isEmpty()) steps.addAll(List.of("admin", "produce", "consume", "group", "group-consumer"));
    String topic = "compat-java-" + Long.toHexString(System.nanoTime());

    Properties common = new Properties();
    common.put("bootstrap.servers", bootstrap);
    common.put("request.timeout.ms", "15000");
    common.put("default.api.timeout.ms", "30000");

    try (Admin admin = Admin.create(common)) {
      step("admin", steps, () -> {
        admin.createTopics(List.of(new NewTopic(topic, 3, (short) -1))).all().get(30, TimeUnit.SECONDS);
        Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
        if (!names.contains(topic)) throw new IllegalStateException("created topic not listed: " + names);
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
        if (d.partitions().size() != 3) throw new IllegalStateException("partitions " + d.partitions().size());
        Collection<org.apache.kafka.common.Node> nodes = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS);
        return "topic " + topic + ", 3 partitions, " + nodes.size() + " broker(s)";
      });

      Map<Integer, List<String>> sent = new HashMap<>();
      step("produce", steps, () -> {
        String[] codecs = {"none", "gzip", "snappy", "lz4", "zstd"};
        Properties p = (Properties) common.clone();
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("linger.ms", "5");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        int n = 0;
        for (String codec : codecs) {
          p.put("compression.type", codec);
          try (Producer<String, String> prod = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < RECORDS / codecs.length; i++, n++) {
              fs.add(prod.send(new ProducerRecord<>(topic, "k" + (n % 17), codec + "-" + n)));
            }
            prod.flush();
            for (int i = 0; i < fs.size(); i++) {
              RecordMetadata md = fs.get(i).get(30, TimeUnit.SECONDS);
              sent.computeIfAbsent(md.partition(), k -> new ArrayList<>());
            }
          }
        }
        return n + " records, idempotent, acks=all, codecs " + String.join(",", codecs);
      });

      step("consume", steps, () -> {
        Properties c = (Properties) common.clone();
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("max.partition.fetch.bytes", "4096"); // several fetches: a broker's fetch session (KIP-227) is used
        int got = 0;
        try (Consumer<String, String> cons = new KafkaConsumer<>(c)) {
          List<TopicPartition> tps = new ArrayList<>();
          for (int i = 0; i < 3; i++) tps.add(new TopicPartition(topic, i));
          cons.assign(tps);
          cons.seekToBeginning(tps);
          long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
          Map<String, Integer> lastByKey = new HashMap<>();
          while (got < RECORDS && System.nanoTime() < deadline) {
            for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(500))) {
              int seq = Integer.parseInt(r.value().substring(r.value().indexOf('-') + 1));
              Integer last = lastByKey.put(r.key(), seq);
              if (last != null && last >= seq) throw new IllegalStateException("key " + r.key() + ": " + seq + " after " + last);
              got++;
            }
          }
        }
        if (got != RECORDS) throw new IllegalStateException("read " + got + " of " + RECORDS);
        return got + " records in order per key";
      });

      // Not in the default steps (a reference Kafka needs share groups
      // enabled and share.auto.offset.reset=earliest): share (KIP-932).
      step("share", steps, () -> share(common, admin, topic + "-share"));
      step("share-offsets", steps, () -> shareOffsets(common, admin, topic + "-share-offsets"));

      for (String protocol : List.of("classic", "consumer")) {
      String stepName = protocol.equals("classic") ? "group" : "group-consumer";
      step(stepName, steps, () -> {
        String groupId = topic + "-" + stepName;
        Properties c = (Properties) common.clone();
        c.put("group.id", groupId);
        c.put("group.protocol", protocol);
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        int got = 0;
        try (Consumer<String, String> cons = new KafkaConsumer<>(c)) {
          cons.subscribe(List.of(topic));
          long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
          while (got < RECORDS && System.nanoTime() < deadline) {
            got += cons.poll(Duration.ofMillis(500)).count();
            cons.commitSync();
          }
        }
        if (got != RECORDS) throw new IllegalStateException("group read " + got + " of " + RECORDS);
        Map<TopicPartition, OffsetAndMetadata> committed =
            admin.listConsumerGroupOffsets(groupId).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        long sum = committed.values().stream().mapToLong(OffsetAndMetadata::offset).sum();
        if (sum != RECORDS) throw new IllegalStateException("committed offsets sum to " + sum);
        return got + " records through a group (group.protocol=" + protocol + "), commits sum to " + sum;
      });
      }

      // Not in the default steps: a broker without an authorizer (the
      // reference Kafka as run by scripts/kafka-ref.sh) answers the ACL
      // APIs SECURITY_DISABLED.
      step("acls", steps, () -> {
        org.apache.kafka.common.resource.ResourcePattern pattern = new org.apache.kafka.common.resource.ResourcePattern(
            org.apache.kafka.common.resource.ResourceType.TOPIC, topic, org.apache.kafka.common.resource.PatternType.LITERAL);
        org.apache.kafka.common.acl.AclBinding binding = new org.apache.kafka.common.acl.AclBinding(pattern,
            new org.apache.kafka.common.acl.AccessControlEntry("User:compat", "*",
                org.apache.kafka.common.acl.AclOperation.READ, org.apache.kafka.common.acl.AclPermissionType.ALLOW));
        admin.createAcls(List.of(binding)).all().get(30, TimeUnit.SECONDS);
        org.apache.kafka.common.acl.AclBindingFilter filter = new org.apache.kafka.common.acl.AclBindingFilter(
            new org.apache.kafka.common.resource.ResourcePatternFilter(org.apache.kafka.common.resource.ResourceType.TOPIC, topic,
                org.apache.kafka.common.resource.PatternType.MATCH),
            org.apache.kafka.common.acl.AccessControlEntryFilter.ANY);
        Collection<org.apache.kafka.common.acl.AclBinding> described = admin.describeAcls(filter).values().get(30, TimeUnit.SECONDS);
        if (described.size() != 1 || !described.contains(binding)) throw new IllegalStateException("described " + described);
        Collection<org.apache.kafka.common.acl.AclBinding> deleted = admin.deleteAcls(List.of(filter)).all().get(30, TimeUnit.SECONDS);
        if (deleted.size() != 1) throw new IllegalStateException("deleted " + deleted);
        int left = admin.describeAcls(filter).values().get(30, TimeUnit.SECONDS).size();
        if (left != 0) throw new IllegalStateException(left + " ACLs left after the delete");
        return "created, described (MATCH), deleted an ACL on " + topic;
      });

      step("records", steps, () -> {
        TopicPartition tp = new TopicPartition(topic, 0);
        long end = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
        if (end < 1) throw new IllegalStateException("partition 0 ends at " + end + ": run produce first");
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(end))).lowWatermarks().get(tp)
            .get(30, TimeUnit.SECONDS).lowWatermark();
        long start = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
        if (low != end || start != end) throw new IllegalStateException("low watermark " + low + ", earliest " + start + ", want " + end);
        return "deleted " + tp + " below " + end;
      });

      if (steps.contains("admin")) {
        step("admin", steps, () -> {
          admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
          return "deleted " + topic;
        });
      }
    }
    System.exit(failures);
  }

  static final int SHARE_RECORDS = 300;

  /**
   * Share groups (KIP-932): two KafkaShareConsumers of one group on a topic
   * of one partition (more consumers than partitions) both receive records,
   * acknowledge each explicitly (ACCEPT, and REJECT for one), and together
   * see every record exactly once; the rejected one is in TOPIC.dlq.
   */
  static String share(Properties common, Admin admin, String topic) throws Exception {
    admin.createTopics(List.of(new NewTopic(topic, 1, (short) -1))).all().get(30, TimeUnit.SECONDS);
    produceValues(common, topic, SHARE_RECORDS);
    String reject = "v" + (SHARE_RECORDS / 2);
    Properties c = (Properties) common.clone();
    c.put("group.id", topic + "-group");
    c.put("key.deserializer", StringDeserializer.class.getName());
    c.put("value.deserializer", StringDeserializer.class.getName());
    c.put("share.acknowledgement.mode", "explicit");
    c.put("max.poll.records", "10");
    Map<String, String> seenBy = new java.util.concurrent.ConcurrentHashMap<>();
    List<String> dups = Collections.synchronizedList(new ArrayList<>());
    int[] perConsumer = new int[2];
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
    List<Thread> threads = new ArrayList<>();
    List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
    for (int i = 0; i < 2; i++) {
      final int me = i;
      Thread th = new Thread(() -> {
        try (ShareConsumer<String, String> sc = new KafkaShareConsumer<>(c)) {
          sc.subscribe(List.of(topic));
          while (seenBy.size() < SHARE_RECORDS && System.nanoTime() < deadline) {
            for (ConsumerRecord<String, String> r : sc.poll(Duration.ofMillis(200))) {
              String prev = seenBy.putIfAbsent(r.value(), "consumer" + me);
              if (prev != null) dups.add(r.value() + " (offset " + r.offset() + ", delivery " + r.deliveryCount() + ")");
              sc.acknowledge(r, r.value().equals(reject) ? AcknowledgeType.REJECT : AcknowledgeType.ACCEPT);
              perConsumer[me]++;
              Thread.sleep(1); // work: lets the other consumer take records too
            }
            sc.commitSync(Duration.ofSeconds(15));
          }
        } catch (Throwable e) {
          errors.add(e);
        }
      });
      threads.add(th);
      th.start();
    }
    for (Thread th : threads) th.join();
    if (!errors.isEmpty()) throw new IllegalStateException("share consumer: " + errors.get(0), errors.get(0));
    if (seenBy.size() != SHARE_RECORDS) throw new IllegalStateException("share consumers read " + seenBy.size() + " of " + SHARE_RECORDS);
    if (!dups.isEmpty()) throw new IllegalStateException("delivered twice: " + dups);
    if (perConsumer[0] == 0 || perConsumer[1] == 0)
      throw new IllegalStateException("records per consumer " + perConsumer[0] + ", " + perConsumer[1] + ": both should receive");
    // The rejected record is the dead-letter topic's one record.
    Properties d = (Properties) common.clone();
    d.put("key.deserializer", StringDeserializer.class.getName());
    d.put("value.deserializer", StringDeserializer.class.getName());
    List<String> dead = new ArrayList<>();
    try (Consumer<String, String> cons = new KafkaConsumer<>(d)) {
      TopicPartition tp = new TopicPartition(topic + ".dlq", 0);
      cons.assign(List.of(tp));
      cons.seekToBeginning(List.of(tp));
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (dead.isEmpty() && System.nanoTime() < until) {
        for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(200))) dead.add(r.value());
      }
      for (ConsumerRecord<String, String> r : cons.poll(Duration.ofMillis(500))) dead.add(r.value());
    }
    if (!dead.equals(List.of(reject))) throw new IllegalStateException("dead letters " + dead + ", want [" + reject + "]");
    return SHARE_RECORDS + " records once each through two share consumers of one partition (" + perConsumer[0] + " + "
        + perConsumer[1] + "), " + reject + " rejected to " + topic + ".dlq";
  }

  /**
   * Share-group offsets through the AdminClient (KIP-932, Kafka 4.1+): a
   * share consumer accepts the records it polls from a topic of one
   * partition and leaves; listShareGroupOffsets shows the start offset past
   * them, alterShareGroupOffsets moves it, deleteShareGroupOffsets sends
   * the topic back to its start.
   */
  static String shareOffsets(Properties common, Admin admin, String topic) throws Exception {
    final int n = 20;
    admin.createTopics(List.of(new NewTopic(topic, 1, (short) -1))).all().get(30, TimeUnit.SECONDS);
    produceValues(common, topic, n);
    String group = topic + "-group";
    Properties c = (Properties) common.clone();
    c.put("group.id", group);
    c.put("key.deserializer", StringDeserializer.class.getName());
    c.put("value.deserializer", StringDeserializer.class.getName());
    c.put("share.acknowledgement.mode", "explicit");
    c.put("max.poll.records", "5");
    TreeSet<Long> accepted = new TreeSet<>();
    try (ShareConsumer<String, String> sc = new KafkaShareConsumer<>(c)) {
      sc.subscribe(List.of(topic));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (accepted.isEmpty() && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : sc.poll(Duration.ofMillis(200))) {
          sc.acknowledge(r, AcknowledgeType.ACCEPT);
          accepted.add(r.offset());
        }
      }
      sc.commitSync(Duration.ofSeconds(15));
    }
    long want = 0;
    while (accepted.contains(want)) want++;
    if (want == 0) throw new IllegalStateException("the share consumer accepted nothing from offset 0: " + accepted);
    TopicPartition tp = new TopicPartition(topic, 0);
    long start = shareStart(admin, group, tp);
    if (start != want) throw new IllegalStateException("start offset " + start + " after accepting " + accepted + ", want " + want);
    // The consumer's leave may reach the coordinator after its close: an
    // alter of a group with members is refused (NON_EMPTY_GROUP).
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (true) {
      try {
        admin.alterShareGroupOffsets(group, Map.of(tp, 15L)).all().get(30, TimeUnit.SECONDS);
        break;
      } catch (java.util.concurrent.ExecutionException e) {
        if (!(e.getCause() instanceof org.apache.kafka.common.errors.GroupNotEmptyException) || System.nanoTime() > deadline) throw e;
        Thread.sleep(200);
      }
    }
    if ((start = shareStart(admin, group, tp)) != 15) throw new IllegalStateException("start offset " + start + " after altering to 15");
    admin.deleteShareGroupOffsets(group, Set.of(topic)).all().get(30, TimeUnit.SECONDS);
    if ((start = shareStart(admin, group, tp)) > 0) throw new IllegalStateException("start offset " + start + " after the delete");
    return "start offset " + want + " after the consumer accepted " + accepted.size() + " records, altered to 15, deleted";
  }

  /** Produces values v0 to v(n-1) to topic, acks=all. */
  static void produceValues(Properties common, String topic, int n) {
    Properties p = (Properties) common.clone();
    p.put("acks", "all");
    p.put("key.serializer", StringSerializer.class.getName());
    p.put("value.serializer", StringSerializer.class.getName());
    try (Producer<String, String> prod = new KafkaProducer<>(p)) {
      for (int i = 0; i < n; i++) prod.send(new ProducerRecord<>(topic, "v" + i));
      prod.flush();
    }
  }

  /** The share group's start offset of tp (-1: none), from listShareGroupOffsets. */
  static long shareStart(Admin admin, String group, TopicPartition tp) throws Exception {
    Map<TopicPartition, SharePartitionOffsetInfo> m = admin.listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
        .partitionsToOffsetInfo(group).get(30, TimeUnit.SECONDS);
    SharePartitionOffsetInfo info = m.get(tp);
    return info == null ? -1 : info.startOffset();
  }

  interface Step {
    String run() throws Exception;
  }

  static void step(String name, Set<String> steps, Step s) {
    if (!steps.contains(name)) return;
    try {
      System.out.println("ok " + name + " " + s.run());
    } catch (Exception e) {
      failures++;
      Throwable c = e.getCause() != null ? e.getCause() : e;
      System.out.println("FAIL " + name + " " + c);
    }
  }
}
