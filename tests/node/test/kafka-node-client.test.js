'use strict'

// kafka-node 5.0.0 (issue 6): KafkaClient metadata, Admin listTopics / createTopics and
// Offset.fetchLatestOffsets / fetchEarliestOffsets. kafka-node negotiates with ApiVersions v0
// and then uses Metadata v1, CreateTopics v1 and ListOffsets v0.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic } = require('../harness')
const { kafka, callback, connectClient, loadMetadata, plain } = require('../kafka-node-helpers')

const ctx = useBroker()

const NODE_ID = 1 // `sluice serve` default --node-id

/** Creates a topic with kafkajs (setup only, so that these tests exercise one kafka-node call each). */
async function createTopicWithKafkajs(topic, numPartitions) {
  const admin = await ctx.admin()
  assert.equal(await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] }), true)
}

/** The metadata kafka-node reports for one partition of a single-broker cluster. */
function partitionMetadata(topic, partition) {
  return { topic, partition, leader: NODE_ID, replicas: [NODE_ID], isr: [NODE_ID] }
}

function topicMetadata(topic, numPartitions) {
  const out = {}
  for (let p = 0; p < numPartitions; p++) out[p] = partitionMetadata(topic, p)
  return out
}

test(
  'KafkaClient: ready after ApiVersions; loadMetadataForTopics gives the broker, partitions and leaders',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-meta')
    await createTopicWithKafkajs(topic, 3)
    const client = await connectClient(ctx)

    // kafka-node picks its request versions from the ApiVersions answer.
    const support = client.brokerForLeader().apiSupport
    assert.equal(support.metadata.usable, 1)
    assert.equal(support.produce.usable, 2)
    assert.equal(support.fetch.usable, 2)

    const [brokers, cluster] = plain(await loadMetadata(client, [topic]))
    assert.deepEqual(brokers, { [NODE_ID]: { nodeId: NODE_ID, host: '127.0.0.1', port: ctx.broker.port } })
    assert.deepEqual(cluster, {
      metadata: { [topic]: topicMetadata(topic, 3) },
      clusterMetadata: { controllerId: NODE_ID },
    })

    // topicExists loads metadata for all topics.
    await callback('topicExists', cb => client.topicExists([topic], cb))
    await assert.rejects(
      callback('topicExists(missing)', cb => client.topicExists([topic, `${topic}-missing`], cb)),
      err => {
        assert.equal(err.name, 'TopicsNotExistError')
        assert.deepEqual(err.topics, [`${topic}-missing`])
        return true
      }
    )
  })
)

test(
  'Admin.createTopics creates a topic with 3 partitions; a second create reports it exists',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-create')
    const client = await connectClient(ctx)
    const admin = new kafka.Admin(client)
    admin.on('error', () => {})

    const result = await callback('Admin.createTopics', cb =>
      admin.createTopics([{ topic, partitions: 3, replicationFactor: 1 }], cb)
    )
    assert.deepEqual(result, [])

    const [, cluster] = plain(await loadMetadata(client, [topic]))
    assert.deepEqual(cluster.metadata, { [topic]: topicMetadata(topic, 3) })

    // Seen by another client too (kafkajs, current protocol versions).
    const kafkajsAdmin = await ctx.admin()
    const { topics } = await kafkajsAdmin.fetchTopicMetadata({ topics: [topic] })
    assert.deepEqual(
      topics[0].partitions.map(p => p.partitionId).sort(),
      [0, 1, 2]
    )

    const again = await callback('Admin.createTopics (again)', cb =>
      admin.createTopics([{ topic, partitions: 3, replicationFactor: 1 }], cb)
    )
    assert.equal(again.length, 1)
    assert.equal(again[0].topic, topic)
    assert.match(again[0].error, /already exists/i)
  })
)

test(
  'Admin.listTopics lists the broker and every topic with its partitions',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const one = uniqueTopic('kn-list-a')
    const two = uniqueTopic('kn-list-b')
    await createTopicWithKafkajs(one, 1)
    await createTopicWithKafkajs(two, 4)
    const client = await connectClient(ctx)
    const admin = new kafka.Admin(client)
    admin.on('error', () => {})

    const [brokers, cluster] = plain(await callback('Admin.listTopics', cb => admin.listTopics(cb)))
    assert.deepEqual(brokers, { [NODE_ID]: { nodeId: NODE_ID, host: '127.0.0.1', port: ctx.broker.port } })
    assert.deepEqual(cluster.clusterMetadata, { controllerId: NODE_ID })
    assert.deepEqual(cluster.metadata[one], topicMetadata(one, 1))
    assert.deepEqual(cluster.metadata[two], topicMetadata(two, 4))
    // Internal topics (e.g. __consumer_offsets) may be listed too, but no topic is listed twice
    // and every listed topic has partitions.
    for (const [name, partitions] of Object.entries(cluster.metadata)) {
      assert.ok(Object.keys(partitions).length > 0, `topic ${name} without partitions`)
    }
  })
)

test(
  'Offset.fetchLatestOffsets / fetchEarliestOffsets give the end and start of each partition',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-latest')
    await createTopicWithKafkajs(topic, 3)
    const producer = await ctx.producer()
    await producer.send({
      topic,
      acks: -1,
      messages: [
        ...[0, 1, 2].map(i => ({ partition: 0, value: `p0-${i}` })),
        ...[0, 1, 2, 3, 4].map(i => ({ partition: 1, value: `p1-${i}` })),
      ],
    })

    const client = await connectClient(ctx)
    const offset = new kafka.Offset(client)
    offset.on('error', () => {})

    const latest = await callback('Offset.fetchLatestOffsets', cb => offset.fetchLatestOffsets([topic], cb))
    assert.deepEqual(latest, { [topic]: { 0: 3, 1: 5, 2: 0 } })

    const earliest = await callback('Offset.fetchEarliestOffsets', cb => offset.fetchEarliestOffsets([topic], cb))
    assert.deepEqual(earliest, { [topic]: { 0: 0, 1: 0, 2: 0 } })

    // Offset.fetch with time -1 (latest) and maxNum 1: the raw ListOffsets v0 answer is a list.
    const raw = await callback('Offset.fetch', cb =>
      offset.fetch([{ topic, partition: 1, time: -1, maxNum: 1 }], cb)
    )
    assert.deepEqual(raw, { [topic]: { 1: [5] } })
  })
)
