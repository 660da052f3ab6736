'use strict'

// kafkajs admin calls: fetchTopicOffsets, fetchTopicOffsetsByTimestamp, deleteTopics,
// createPartitions, describeConfigs / alterConfigs.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')
const { useBroker, uniqueTopic, waitFor, protocolErrorOf } = require('../harness')

const ctx = useBroker()

// ConfigSource values of DescribeConfigs v1+ (kafkajs src/protocol/configSource.js).
const DYNAMIC_TOPIC_CONFIG = 1
const DEFAULT_CONFIG = 5

const byPartition = (a, b) => a.partition - b.partition

/** An assert.rejects validator for a Kafka error of the given type and code. */
const kafkaError = (type, code) => error => {
  const protocolError = protocolErrorOf(error)
  assert.ok(protocolError, `expected ${type}, got ${error.name}: ${error.message}`)
  assert.equal(protocolError.type, type)
  assert.equal(protocolError.code, code)
  return true
}

async function describeTopicConfigs(admin, topic, configNames, includeSynonyms = false) {
  const { resources } = await admin.describeConfigs({
    includeSynonyms,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
  })
  assert.equal(resources.length, 1)
  const [resource] = resources
  assert.equal(resource.errorCode, 0)
  assert.equal(resource.resourceType, ConfigResourceTypes.TOPIC)
  assert.equal(resource.resourceName, topic)
  return new Map(resource.configEntries.map(e => [e.configName, e]))
}

test(
  'fetchTopicOffsets reports low, high and offset per partition',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('offsets')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }] }),
      true
    )
    assert.deepEqual((await admin.fetchTopicOffsets(topic)).sort(byPartition), [
      { partition: 0, offset: '0', high: '0', low: '0' },
      { partition: 1, offset: '0', high: '0', low: '0' },
      { partition: 2, offset: '0', high: '0', low: '0' },
    ])

    const producer = await ctx.producer()
    const counts = [2, 0, 5]
    for (const [partition, n] of counts.entries()) {
      if (n === 0) continue
      await producer.send({
        topic,
        messages: Array.from({ length: n }, (_, i) => ({ partition, value: `p${partition}-${i}` })),
      })
    }
    // A second batch on partition 0 moves its end offset on again.
    await producer.send({ topic, messages: [{ partition: 0, value: 'p0-2' }] })

    assert.deepEqual((await admin.fetchTopicOffsets(topic)).sort(byPartition), [
      { partition: 0, offset: '3', high: '3', low: '0' },
      { partition: 1, offset: '0', high: '0', low: '0' },
      { partition: 2, offset: '5', high: '5', low: '0' },
    ])
  })
)

test(
  'fetchTopicOffsetsByTimestamp finds the first offset at or after a timestamp',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('by-timestamp')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] }),
      true
    )
    // Recent, explicit CreateTime timestamps, one second apart.
    const base = Date.now() - 10 * 60 * 1000
    const ts = i => String(base + i * 1000)
    const producer = await ctx.producer()
    // Partition 0: one batch per record. Partition 1: all five records in one batch, so the
    // lookup must look inside a batch, as Kafka does.
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic, messages: [{ partition: 0, value: `p0-${i}`, timestamp: ts(i) }] })
    }
    await producer.send({
      topic,
      messages: Array.from({ length: 5 }, (_, i) => ({
        partition: 1,
        value: `p1-${i}`,
        timestamp: ts(i),
      })),
    })

    const lookup = async t => (await admin.fetchTopicOffsetsByTimestamp(topic, t)).sort(byPartition)

    // Before every record: the first offset.
    assert.deepEqual(await lookup(base - 60_000), [
      { partition: 0, offset: '0' },
      { partition: 1, offset: '0' },
    ])
    // Exactly a record's timestamp: that record.
    assert.deepEqual(await lookup(base + 2000), [
      { partition: 0, offset: '2' },
      { partition: 1, offset: '2' },
    ])
    // Between two records: the later one.
    assert.deepEqual(await lookup(base + 3500), [
      { partition: 0, offset: '4' },
      { partition: 1, offset: '4' },
    ])
    // After every record: Kafka answers -1 and kafkajs substitutes the high watermark.
    assert.deepEqual(await lookup(base + 60_000), [
      { partition: 0, offset: '5' },
      { partition: 1, offset: '5' },
    ])

    // The consumer sees the timestamps it produced.
    const got = await ctx.consume({ topic, count: 10 })
    for (const m of got) {
      const i = Number(m.value.toString().split('-')[1])
      assert.equal(m.timestamp, ts(i), `timestamp of ${m.value}`)
    }
  })
)

test(
  'deleteTopics removes the topic; re-creating it starts empty',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('delete-me')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] }),
      true
    )
    const producer = await ctx.producer()
    await producer.send({ topic, messages: [{ value: 'a' }, { value: 'b' }, { value: 'c' }] })
    await producer.disconnect()
    assert.deepEqual(await admin.fetchTopicOffsets(topic), [
      { partition: 0, offset: '3', high: '3', low: '0' },
    ])

    await admin.deleteTopics({ topics: [topic], timeout: 10_000 })
    // Topic deletion is asynchronous in Kafka; wait until it is gone.
    await waitFor(async () => !(await admin.listTopics()).includes(topic), {
      timeoutMs: 10_000,
      describe: () => `${topic} to disappear from listTopics`,
    })

    const recreated = await waitFor(
      () => admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] }),
      { timeoutMs: 10_000, describe: () => `re-creating ${topic}` }
    )
    assert.equal(recreated, true)
    assert.ok((await admin.listTopics()).includes(topic))
    assert.deepEqual(await admin.fetchTopicOffsets(topic), [
      { partition: 0, offset: '0', high: '0', low: '0' },
    ])

    const producer2 = await ctx.producer()
    const [sent] = await producer2.send({ topic, messages: [{ value: 'fresh' }] })
    assert.equal(sent.baseOffset, '0')
    const got = await ctx.consume({ topic, count: 1 })
    assert.deepEqual(
      got.map(m => [m.offset, m.value.toString()]),
      [['0', 'fresh']]
    )
  })
)

test(
  'createPartitions grows a topic from 1 to 3 partitions and partition 2 accepts records',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('grow')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] }),
      true
    )
    let metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(metadata.topics[0].partitions.length, 1)

    // kafkajs resolves with undefined on success and rejects on any error code.
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })

    metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    const partitions = [...metadata.topics[0].partitions].sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(
      partitions.map(p => [p.partitionId, p.leader, p.partitionErrorCode]),
      [
        [0, 1, 0],
        [1, 1, 0],
        [2, 1, 0],
      ]
    )

    // Shrinking, or "growing" to the same count, is INVALID_PARTITIONS.
    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }),
      kafkaError('INVALID_PARTITIONS', 37)
    )
    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }),
      kafkaError('INVALID_PARTITIONS', 37)
    )

    const producer = await ctx.producer()
    const [sent] = await producer.send({ topic, messages: [{ partition: 2, value: 'on partition 2' }] })
    assert.equal(sent.partition, 2)
    assert.equal(sent.errorCode, 0)
    assert.equal(sent.baseOffset, '0')

    const [m] = await ctx.consume({ topic, count: 1 })
    assert.equal(m.partition, 2)
    assert.equal(m.offset, '0')
    assert.equal(m.value.toString(), 'on partition 2')
  })
)

test(
  'describeConfigs shows Kafka defaults; alterConfigs sets retention.ms',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('configs')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] }),
      true
    )

    // All configs of the topic, with Kafka's names and defaults.
    const all = await describeTopicConfigs(admin, topic)
    const expectedDefaults = {
      'retention.ms': '604800000',
      'retention.bytes': '-1',
      'cleanup.policy': 'delete',
      'segment.bytes': '1073741824',
      'max.message.bytes': '1048588',
      'message.timestamp.type': 'CreateTime',
      'min.insync.replicas': '1',
      'compression.type': 'producer',
    }
    for (const [name, value] of Object.entries(expectedDefaults)) {
      const entry = all.get(name)
      assert.ok(entry, `describeConfigs lists ${name}`)
      assert.equal(entry.configValue, value, `${name} default value`)
      assert.equal(entry.isDefault, true, `${name} isDefault`)
      assert.equal(entry.configSource, DEFAULT_CONFIG, `${name} configSource`)
      assert.equal(entry.readOnly, false, `${name} readOnly`)
      assert.equal(entry.isSensitive, false, `${name} isSensitive`)
    }

    // Asking for named configs returns just those.
    const some = await describeTopicConfigs(admin, topic, ['retention.ms', 'cleanup.policy'])
    assert.deepEqual([...some.keys()].sort(), ['cleanup.policy', 'retention.ms'])
    assert.equal(some.get('retention.ms').configValue, '604800000')
    assert.equal(some.get('cleanup.policy').configValue, 'delete')

    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [{ name: 'retention.ms', value: '3600000' }],
        },
      ],
    })

    const altered = await describeTopicConfigs(admin, topic, ['retention.ms', 'cleanup.policy'])
    const retention = altered.get('retention.ms')
    assert.equal(retention.configValue, '3600000')
    assert.equal(retention.isDefault, false)
    assert.equal(retention.configSource, DYNAMIC_TOPIC_CONFIG)
    const cleanup = altered.get('cleanup.policy')
    assert.equal(cleanup.configValue, 'delete')
    assert.equal(cleanup.isDefault, true)
    assert.equal(cleanup.configSource, DEFAULT_CONFIG)

    // With synonyms (as `kafka-configs --describe --all` shows them): an override lists
    // itself first; a default lists the broker config it comes from.
    const withSynonyms = await describeTopicConfigs(
      admin,
      topic,
      ['retention.ms', 'cleanup.policy'],
      true
    )
    assert.deepEqual(withSynonyms.get('retention.ms').configSynonyms[0], {
      configName: 'retention.ms',
      configValue: '3600000',
      configSource: DYNAMIC_TOPIC_CONFIG,
    })
    assert.deepEqual(withSynonyms.get('cleanup.policy').configSynonyms, [
      { configName: 'log.cleanup.policy', configValue: 'delete', configSource: DEFAULT_CONFIG },
    ])
  })
)

test(
  'createTopics with configEntries stores them as topic overrides; alterConfigs replaces them all',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('with-configs')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({
        topics: [
          {
            topic,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: [
              { name: 'cleanup.policy', value: 'compact' },
              { name: 'retention.ms', value: '86400000' },
            ],
          },
        ],
      }),
      true
    )
    const configs = await describeTopicConfigs(admin, topic, [
      'cleanup.policy',
      'retention.ms',
      'segment.bytes',
    ])
    assert.equal(configs.get('cleanup.policy').configValue, 'compact')
    assert.equal(configs.get('cleanup.policy').isDefault, false)
    assert.equal(configs.get('cleanup.policy').configSource, DYNAMIC_TOPIC_CONFIG)
    assert.equal(configs.get('retention.ms').configValue, '86400000')
    assert.equal(configs.get('retention.ms').configSource, DYNAMIC_TOPIC_CONFIG)
    assert.equal(configs.get('segment.bytes').configValue, '1073741824')
    assert.equal(configs.get('segment.bytes').isDefault, true)

    // AlterConfigs (not incremental) replaces the topic's whole set of overrides: what the
    // request leaves out goes back to its default.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [{ name: 'retention.ms', value: '172800000' }],
        },
      ],
    })
    const replaced = await describeTopicConfigs(admin, topic, ['cleanup.policy', 'retention.ms'])
    assert.equal(replaced.get('retention.ms').configValue, '172800000')
    assert.equal(replaced.get('retention.ms').configSource, DYNAMIC_TOPIC_CONFIG)
    assert.equal(replaced.get('cleanup.policy').configValue, 'delete')
    assert.equal(replaced.get('cleanup.policy').isDefault, true)
    assert.equal(replaced.get('cleanup.policy').configSource, DEFAULT_CONFIG)
  })
)

test(
  'createTopics errors: replication factor above the broker count, invalid names',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('rf3')
    await assert.rejects(
      admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 3 }] }),
      kafkaError('INVALID_REPLICATION_FACTOR', 38)
    )
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'bad/name', numPartitions: 1, replicationFactor: 1 }] }),
      kafkaError('INVALID_TOPIC_EXCEPTION', 17)
    )
    await assert.rejects(
      admin.createTopics({
        topics: [{ topic: 'x'.repeat(250), numPartitions: 1, replicationFactor: 1 }],
      }),
      kafkaError('INVALID_TOPIC_EXCEPTION', 17)
    )
    const topics = await admin.listTopics()
    assert.ok(!topics.includes(topic) && !topics.includes('bad/name'), 'nothing was created')

    // replicationFactor -1 means "the broker's default" (KIP-464).
    const byDefault = uniqueTopic('rf-default')
    assert.equal(
      await admin.createTopics({ topics: [{ topic: byDefault, numPartitions: 2, replicationFactor: -1 }] }),
      true
    )
    const metadata = await admin.fetchTopicMetadata({ topics: [byDefault] })
    assert.equal(metadata.topics[0].partitions.length, 2)
  })
)

test(
  'deleteTopics of an unknown topic is UNKNOWN_TOPIC_OR_PARTITION',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    await assert.rejects(
      admin.deleteTopics({ topics: [uniqueTopic('never-created')], timeout: 5000 }),
      kafkaError('UNKNOWN_TOPIC_OR_PARTITION', 3)
    )
  })
)

test(
  'describeCluster names broker 1 at the advertised address as the controller',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const cluster = await admin.describeCluster()
    const [host, port] = ctx.address.split(':')
    assert.deepEqual(cluster.brokers, [{ nodeId: 1, host, port: Number(port) }])
    assert.equal(cluster.controller, 1)
    assert.equal(typeof cluster.clusterId, 'string')
    assert.ok(cluster.clusterId.length > 0)
  })
)
