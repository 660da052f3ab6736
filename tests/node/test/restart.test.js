'use strict'

// Clean shutdown and restart as a kafkajs user sees them: SIGTERM exits 0, and topics,
// configs, records and committed group offsets are still there after a restart.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes } = require('kafkajs')
const { useBroker, uniqueTopic } = require('../harness')

const ctx = useBroker()
const topic = uniqueTopic('durable')
const groupId = uniqueTopic('durable-group')

test(
  'SIGTERM exits 0; a restart on the same data dir keeps topics, configs and records',
  { timeout: 90_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    assert.equal(
      await admin.createTopics({
        topics: [
          {
            topic,
            numPartitions: 2,
            replicationFactor: 1,
            configEntries: [{ name: 'retention.ms', value: '7200000' }],
          },
        ],
      }),
      true
    )
    const producer = await ctx.producer()
    await producer.send({
      topic,
      messages: [
        { partition: 0, key: 'a', value: 'first' },
        { partition: 1, key: 'b', value: 'second' },
      ],
    })
    // The group consumes both records and commits (kafkajs commits on disconnect).
    const before = await ctx.consume({ topic, groupId, count: 2 })
    assert.equal(before.length, 2)
    await ctx.disconnectAll()

    const dataDir = ctx.broker.dataDir
    const stopped = await ctx.broker.stop()
    assert.deepEqual(
      { code: stopped.code, signal: stopped.signal, killed: stopped.killed },
      { code: 0, signal: null, killed: false },
      'SIGTERM shuts the broker down cleanly with exit code 0'
    )

    await ctx.startBroker({ dataDir })

    const admin2 = await ctx.admin()
    assert.ok((await admin2.listTopics()).includes(topic), 'topic survives restart')
    const metadata = await admin2.fetchTopicMetadata({ topics: [topic] })
    assert.equal(metadata.topics[0].partitions.length, 2)
    const offsets = (await admin2.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets, [
      { partition: 0, offset: '1', high: '1', low: '0' },
      { partition: 1, offset: '1', high: '1', low: '0' },
    ])
    const { resources } = await admin2.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
    })
    assert.equal(resources[0].configEntries[0].configValue, '7200000')
    assert.equal(resources[0].configEntries[0].isDefault, false)

    // New writes continue the offsets; a fresh group reads everything.
    const producer2 = await ctx.producer()
    const [sent] = await producer2.send({ topic, messages: [{ partition: 0, value: 'third' }] })
    assert.equal(sent.baseOffset, '1')
    const all = await ctx.consume({ topic, count: 3 })
    assert.deepEqual(
      all
        .map(m => [m.partition, m.offset, m.value.toString()])
        .sort((a, b) => a[0] - b[0] || Number(a[1]) - Number(b[1])),
      [
        [0, '0', 'first'],
        [0, '1', 'third'],
        [1, '0', 'second'],
      ]
    )
  })
)

test(
  'committed group offsets survive the restart',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin2 = await ctx.admin()
    const groupOffsets = await admin2.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(
      groupOffsets[0].partitions
        .map(({ partition, offset }) => ({ partition, offset }))
        .sort((a, b) => a.partition - b.partition),
      [
        { partition: 0, offset: '1' },
        { partition: 1, offset: '1' },
      ]
    )
  })
)
