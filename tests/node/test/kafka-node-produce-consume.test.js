'use strict'

// kafka-node 5.0.0 (issue 6): Producer and HighLevelProducer (Produce v2, message format v1,
// also gzip-wrapped) with keys and explicit partitions, and Consumer on explicit partitions.
// kafka-node's plain Consumer always sends Fetch v0, so the stored v2 batches come back
// down-converted to message format v0: no timestamps (`timestamp: null` below). Everything
// produced here is also read back with kafkajs to check keys, values and timestamps as stored.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic } = require('../harness')
const {
  kafka,
  byPartitionOffset,
  callback,
  collect,
  connectProducer,
  send,
  startConsumer,
} = require('../kafka-node-helpers')

const ctx = useBroker()

const BASE_TS = Date.UTC(2024, 0, 2, 3, 4, 5) // fixed timestamps make the records comparable

async function createTopicWithKafkajs(topic, numPartitions) {
  const admin = await ctx.admin()
  assert.equal(await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] }), true)
}

/** Reads `count` records back with kafkajs (current Fetch versions) in partition/offset order. */
async function readWithKafkajs(topic, count) {
  const messages = await ctx.consume({ topic, count })
  return byPartitionOffset(
    messages.map(m => ({
      partition: m.partition,
      offset: Number(m.offset),
      key: m.key === null ? null : m.key.toString(),
      value: m.value === null ? null : m.value.toString(),
      timestamp: Number(m.timestamp),
    }))
  )
}

/** Records as kafka-node's Consumer reports them: message format v0 has no timestamp. */
function asFetchV0(topic, records) {
  return records.map(r => ({ topic, ...r, timestamp: null }))
}

test(
  'Producer: explicit partitions, KeyedMessage and payload keys; send returns each base offset',
  { timeout: 25_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-producer')
    await createTopicWithKafkajs(topic, 3)
    const producer = await connectProducer(ctx)

    const before = Date.now()
    const first = await send(producer, [
      {
        topic,
        partition: 0,
        messages: [new kafka.KeyedMessage('k-a', 'v-a'), new kafka.KeyedMessage('k-b', 'v-b')],
      },
      { topic, partition: 2, key: 'k-c', messages: ['v-c0', 'v-c1', 'v-c2'], timestamp: BASE_TS },
    ])
    const after = Date.now()
    assert.deepEqual(first, { [topic]: { 0: 0, 2: 0 } })

    const second = await send(producer, [
      { topic, partition: 0, key: 'k-d', messages: 'v-d', timestamp: BASE_TS + 1 },
      { topic, partition: 2, messages: ['v-e'], timestamp: BASE_TS + 2 },
    ])
    assert.deepEqual(second, { [topic]: { 0: 2, 2: 3 } })

    // A third send to partition 1 only.
    const third = await send(producer, [{ topic, partition: 1, key: 'k-f', messages: ['v-f'], timestamp: BASE_TS + 3 }])
    assert.deepEqual(third, { [topic]: { 1: 0 } })

    const records = await readWithKafkajs(topic, 8)
    // KeyedMessage stamps Date.now() when it is made.
    for (const r of records.slice(0, 2)) {
      assert.ok(r.timestamp >= before && r.timestamp <= after, `timestamp ${r.timestamp} not in [${before}, ${after}]`)
      r.timestamp = 'now'
    }
    assert.deepEqual(records, [
      { partition: 0, offset: 0, key: 'k-a', value: 'v-a', timestamp: 'now' },
      { partition: 0, offset: 1, key: 'k-b', value: 'v-b', timestamp: 'now' },
      { partition: 0, offset: 2, key: 'k-d', value: 'v-d', timestamp: BASE_TS + 1 },
      { partition: 1, offset: 0, key: 'k-f', value: 'v-f', timestamp: BASE_TS + 3 },
      { partition: 2, offset: 0, key: 'k-c', value: 'v-c0', timestamp: BASE_TS },
      { partition: 2, offset: 1, key: 'k-c', value: 'v-c1', timestamp: BASE_TS },
      { partition: 2, offset: 2, key: 'k-c', value: 'v-c2', timestamp: BASE_TS },
      { partition: 2, offset: 3, key: null, value: 'v-e', timestamp: BASE_TS + 2 },
    ])
  })
)

test(
  'HighLevelProducer: explicit partitions and the keyed partitioner; send returns each base offset',
  { timeout: 25_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-hlp')
    const partitions = 4
    await createTopicWithKafkajs(topic, partitions)
    // partitionerType 3 = keyed (kafka-node's own hash of the key).
    const producer = await connectProducer(ctx, { highLevel: true, producerOptions: { partitionerType: 3 } })
    // kafka-node's FAQ: load the topic's metadata before the first keyed send.
    await callback('refreshMetadata', cb => producer.client.refreshMetadata([topic], cb))

    const next = new Array(partitions).fill(0) // next offset of each partition
    const expected = []

    const explicit = await send(producer, [
      { topic, partition: 3, key: 'explicit', messages: ['x0', 'x1'], timestamp: BASE_TS },
    ])
    assert.deepEqual(explicit, { [topic]: { 3: 0 } })
    expected.push(
      { partition: 3, offset: 0, key: 'explicit', value: 'x0', timestamp: BASE_TS },
      { partition: 3, offset: 1, key: 'explicit', value: 'x1', timestamp: BASE_TS }
    )
    next[3] = 2

    const partitioner = new kafka.KeyedPartitioner()
    const keys = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta']
    for (const [i, key] of keys.entries()) {
      const partition = partitioner.getPartition([0, 1, 2, 3], key)
      const timestamp = BASE_TS + 10 + i
      const result = await send(producer, [{ topic, key, messages: [`value-${key}`], timestamp }])
      assert.deepEqual(result, { [topic]: { [partition]: next[partition] } }, `send of key ${key}`)
      expected.push({ partition, offset: next[partition], key, value: `value-${key}`, timestamp })
      next[partition] += 1
    }
    // The keys spread over more than one partition (a fixed property of these keys).
    assert.ok(new Set(expected.map(e => e.partition)).size > 1)

    assert.deepEqual(await readWithKafkajs(topic, expected.length), byPartitionOffset(expected))
  })
)

test(
  'Consumer on explicit partitions from offset 0 (fromOffset: true) receives exactly what kafkajs produced',
  { timeout: 25_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-consumer')
    await createTopicWithKafkajs(topic, 3)
    const producer = await ctx.producer()
    const produced = [
      ...[0, 1, 2, 3].map(i => ({ partition: 0, offset: i, key: `k0-${i}`, value: `v0-${i}`, timestamp: BASE_TS + i })),
      { partition: 1, offset: 0, key: null, value: 'v1-0', timestamp: BASE_TS + 10 },
      { partition: 1, offset: 1, key: 'k1-1', value: '', timestamp: BASE_TS + 11 },
      { partition: 1, offset: 2, key: 'k1-2', value: 'v1-2 ünïcödé', timestamp: BASE_TS + 12 },
    ]
    // One send: one v2 batch per partition on the broker.
    await producer.send({
      topic,
      acks: -1,
      messages: produced.map(m => ({
        partition: m.partition,
        key: m.key,
        value: m.value,
        timestamp: String(m.timestamp),
      })),
    })

    const consumer = await startConsumer(ctx, [
      { topic, partition: 0, offset: 0 },
      { topic, partition: 1, offset: 0 },
      { topic, partition: 2, offset: 0 },
    ])
    const got = await collect(consumer, produced.length)
    assert.deepEqual(byPartitionOffset(got), asFetchV0(topic, produced))
    assert.deepEqual(consumer.errors, [])

    // From the middle of a batch: Kafka drops the records before the fetch offset when it
    // down-converts an uncompressed batch, so the consumer starts exactly at offset 2.
    const fromTwo = await startConsumer(ctx, [{ topic, partition: 0, offset: 2 }])
    const tail = await collect(fromTwo, 2)
    assert.deepEqual(byPartitionOffset(tail), asFetchV0(topic, produced.slice(2, 4)))
    assert.deepEqual(fromTwo.errors, [])

    // Records produced while the consumer is fetching arrive too, and nothing else.
    await producer.send({
      topic,
      acks: -1,
      messages: [{ partition: 2, key: 'late', value: 'late-value', timestamp: String(BASE_TS + 20) }],
    })
    const more = await collect(consumer, produced.length + 1)
    assert.deepEqual(more.slice(produced.length), [
      { topic, partition: 2, offset: 0, key: 'late', value: 'late-value', timestamp: null },
    ])
  })
)

test(
  'kafka-node round trip: Producer (plain and gzip message sets) to Consumer from offset 0',
  { timeout: 25_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-roundtrip')
    await createTopicWithKafkajs(topic, 2)
    const producer = await connectProducer(ctx)

    const plain = await send(producer, [
      { topic, partition: 0, key: 'plain', messages: ['p0', 'p1', 'p2'], timestamp: BASE_TS },
    ])
    assert.deepEqual(plain, { [topic]: { 0: 0 } })
    // attributes 1: the messages travel as one gzip-compressed wrapper message.
    const gzip = await send(producer, [
      { topic, partition: 1, key: 'gz', messages: ['g0', 'g1', 'g2', 'g3'], attributes: 1, timestamp: BASE_TS + 1 },
    ])
    assert.deepEqual(gzip, { [topic]: { 1: 0 } })
    const gzipAgain = await send(producer, [
      { topic, partition: 1, key: 'gz', messages: ['g4', 'g5'], attributes: 1, timestamp: BASE_TS + 2 },
    ])
    assert.deepEqual(gzipAgain, { [topic]: { 1: 4 } })

    const expected = [
      ...['p0', 'p1', 'p2'].map((value, offset) => ({ partition: 0, offset, key: 'plain', value, timestamp: BASE_TS })),
      ...['g0', 'g1', 'g2', 'g3'].map((value, offset) => ({
        partition: 1,
        offset,
        key: 'gz',
        value,
        timestamp: BASE_TS + 1,
      })),
      { partition: 1, offset: 4, key: 'gz', value: 'g4', timestamp: BASE_TS + 2 },
      { partition: 1, offset: 5, key: 'gz', value: 'g5', timestamp: BASE_TS + 2 },
    ]

    const consumer = await startConsumer(ctx, [
      { topic, partition: 0, offset: 0 },
      { topic, partition: 1, offset: 0 },
    ])
    const got = await collect(consumer, expected.length)
    assert.deepEqual(byPartitionOffset(got), asFetchV0(topic, expected))
    assert.deepEqual(consumer.errors, [])

    // The same records as a current client sees them.
    assert.deepEqual(await readWithKafkajs(topic, expected.length), expected)
  })
)
