'use strict'

// A broker started with `--auto-create-topics false`: unknown topics stay unknown.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, protocolErrorOf } = require('../harness')

const ctx = useBroker({ args: ['--auto-create-topics', 'false'] })

const UNKNOWN_TOPIC_OR_PARTITION = 3

function assertUnknownTopic(error) {
  const protocolError = protocolErrorOf(error)
  assert.ok(
    protocolError,
    `expected a Kafka protocol error in the cause chain, got ${error && error.name}: ${error && error.message}`
  )
  assert.equal(protocolError.name, 'KafkaJSProtocolError')
  assert.equal(protocolError.type, 'UNKNOWN_TOPIC_OR_PARTITION')
  assert.equal(protocolError.code, UNKNOWN_TOPIC_OR_PARTITION)
  return true
}

test(
  'producing to an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION and creates nothing',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('unknown')
    // The producer asks for auto-creation (kafkajs' default allowAutoTopicCreation: true);
    // the broker must still refuse.
    const producer = await ctx.producer({ retry: { retries: 1, initialRetryTime: 100 } })
    await assert.rejects(producer.send({ topic, messages: [{ value: 'nowhere' }] }), error => {
      // UNKNOWN_TOPIC_OR_PARTITION is retriable, so kafkajs gives up after its retries.
      assert.equal(error.name, 'KafkaJSNumberOfRetriesExceeded')
      return assertUnknownTopic(error)
    })

    const admin = await ctx.admin()
    assert.ok(!(await admin.listTopics()).includes(topic), 'the topic was not created')
  })
)

test(
  'metadata for an unknown topic is UNKNOWN_TOPIC_OR_PARTITION',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('unknown-metadata')
    const admin = await ctx.admin()
    await assert.rejects(admin.fetchTopicMetadata({ topics: [topic] }), assertUnknownTopic)
    await assert.rejects(admin.fetchTopicOffsets(topic), assertUnknownTopic)
    assert.ok(!(await admin.listTopics()).includes(topic))
  })
)

test(
  'explicitly created topics still work with auto-create off',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('explicit')
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] }),
      true
    )
    const producer = await ctx.producer()
    const [sent] = await producer.send({ topic, messages: [{ key: 'k', value: 'v' }] })
    assert.equal(sent.baseOffset, '0')
    const [m] = await ctx.consume({ topic, count: 1 })
    assert.equal(m.key.toString(), 'k')
    assert.equal(m.value.toString(), 'v')
  })
)
