'use strict'

// The kafkajs tutorials, run unchanged (but for the broker list) against a real sluice
// process or cluster: test/tutorials.test.js runs them against one broker,
// test/tutorials-cluster.test.js against three nodes.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')
const { uniqueTopic, FAST_RETRY } = require('./harness')

/** Registers the tutorials as tests against `ctx` (from `useBroker`). */
function defineTutorials(ctx) {

test(
  'hello world: producer.send to a new topic, group consumer receives it at offset 0',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('my-topic')
    // The tutorial's client, with only the broker address changed.
    const kafka = new Kafka({
      clientId: 'my-app',
      brokers: ctx.brokers,
      logLevel: logLevel.NOTHING,
      retry: FAST_RETRY,
    })

    const producer = ctx.track(kafka.producer())
    await producer.connect()
    const sent = await producer.send({ topic, messages: [{ value: 'Hello, Kafka!' }] })
    assert.equal(sent.length, 1)
    assert.equal(sent[0].topicName, topic)
    assert.equal(sent[0].partition, 0)
    assert.equal(sent[0].errorCode, 0)
    assert.equal(sent[0].baseOffset, '0')

    const received = await ctx.consume({
      topic,
      count: 1,
      groupId: uniqueTopic('my-group'),
      kafkaConfig: { clientId: 'my-app' },
    })
    assert.equal(received.length, 1)
    const [m] = received
    assert.equal(m.topic, topic)
    assert.equal(m.partition, 0)
    assert.equal(m.offset, '0')
    assert.equal(m.key, null)
    assert.equal(m.value.toString(), 'Hello, Kafka!')
    assert.deepEqual(m.headers, {})

    // Exactly one message exists: the auto-created topic has one partition, high watermark 1.
    const admin = await ctx.admin()
    const offsets = await admin.fetchTopicOffsets(topic)
    assert.deepEqual(offsets, [{ partition: 0, offset: '1', high: '1', low: '0' }])
  })
)

test(
  'Temperature: createTopics with 3 partitions, fetchTopicMetadata, create again is TOPIC_ALREADY_EXISTS',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('Temperature')
    const admin = await ctx.admin()
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
    })
    assert.equal(created, true)

    const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(metadata.topics.length, 1)
    assert.equal(metadata.topics[0].name, topic)
    const partitions = [...metadata.topics[0].partitions].sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(
      partitions.map(p => p.partitionId),
      [0, 1, 2]
    )
    for (const p of partitions) {
      assert.equal(p.partitionErrorCode, 0, `partition ${p.partitionId} error code`)
      assert.ok(ctx.nodeIds.includes(p.leader), `partition ${p.partitionId} leader ${p.leader}`)
      assert.deepEqual(p.replicas, [p.leader], `partition ${p.partitionId} replicas`)
      assert.deepEqual(p.isr, [p.leader], `partition ${p.partitionId} isr`)
    }

    const topics = await admin.listTopics()
    assert.ok(topics.includes(topic), `listTopics includes ${topic}`)

    // kafkajs resolves createTopics with false when every topic failed with
    // TOPIC_ALREADY_EXISTS (error code 36); any other error code would reject.
    const again = await admin.createTopics({
      topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
    })
    assert.equal(again, false)

    // Still 3 partitions: the second request did not change the topic.
    const after = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(after.topics[0].partitions.length, 3)
  })
)

test(
  'location updates: explicit partitions by location, consumer sees each on its partition with key',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('location-updates')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] }),
      true
    )

    const updates = [
      { name: 'Alice', location: 'south' },
      { name: 'Bob', location: 'north' },
      { name: 'Carol', location: 'south' },
      { name: 'Dave', location: 'east' },
      { name: 'Eve', location: 'south' },
    ]
    const producer = await ctx.producer()
    for (const { name, location } of updates) {
      await producer.send({
        topic,
        messages: [
          {
            partition: location === 'south' ? 0 : 1,
            key: 'Location Updates',
            value: JSON.stringify({ name, location }),
          },
        ],
      })
    }

    const received = await ctx.consume({ topic, count: updates.length })
    assert.equal(received.length, updates.length)
    for (const m of received) {
      assert.equal(m.key.toString(), 'Location Updates')
      const { location } = JSON.parse(m.value.toString())
      assert.equal(m.partition, location === 'south' ? 0 : 1, `partition of ${m.value}`)
    }
    const byPartition = p =>
      received
        .filter(m => m.partition === p)
        .map(m => [m.offset, JSON.parse(m.value.toString())])
    assert.deepEqual(byPartition(0), [
      ['0', { name: 'Alice', location: 'south' }],
      ['1', { name: 'Carol', location: 'south' }],
      ['2', { name: 'Eve', location: 'south' }],
    ])
    assert.deepEqual(byPartition(1), [
      ['0', { name: 'Bob', location: 'north' }],
      ['1', { name: 'Dave', location: 'east' }],
    ])
  })
)
}

module.exports = { defineTutorials }
