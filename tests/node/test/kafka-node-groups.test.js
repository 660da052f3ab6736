'use strict'

// kafka-node 5.0.0 (issue 6): ConsumerGroup, kafka-node's group consumer (GroupCoordinator,
// JoinGroup, SyncGroup, Heartbeat and LeaveGroup v0; OffsetFetch v1; OffsetCommit v2; ListOffsets
// v0 for `fromOffset: 'earliest'`; Fetch v2) with `protocol: ['roundrobin']`: commits, resuming
// from them, and a rebalance between two members.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, waitFor } = require('../harness')
const {
  kafka,
  assignmentOf,
  byPartitionOffset,
  callback,
  connectClient,
  startConsumerGroup,
} = require('../kafka-node-helpers')

const ctx = useBroker()

const BASE_TS = Date.UTC(2024, 0, 2, 3, 4, 5)

async function createTopicWithKafkajs(topic, numPartitions) {
  const admin = await ctx.admin()
  assert.equal(await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions }] }), true)
}

/**
 * Produces `count` records round-robin over `partitions` with kafkajs; returns them in partition
 * and offset order as kafka-node messages are compared ({ topic, partition, offset, key, value,
 * timestamp }), given the offsets each partition had before (`next`, updated).
 */
async function produce(topic, { prefix, count, partitions, next }) {
  const records = []
  for (let i = 0; i < count; i++) {
    const partition = i % partitions
    records.push({
      topic,
      partition,
      offset: next[partition]++,
      key: `${prefix}-key-${i}`,
      value: `${prefix}-${i}`,
      timestamp: BASE_TS + i,
    })
  }
  const producer = await ctx.producer()
  await producer.send({
    topic,
    acks: -1,
    messages: records.map(r => ({ partition: r.partition, key: r.key, value: r.value, timestamp: String(r.timestamp) })),
  })
  return byPartitionOffset(records)
}

function groupErrors(...groups) {
  return groups.flatMap(g => g.errors.map(e => `${g.options.id}: ${e.message || e}`))
}

/** Waits until `group` has `count` messages (failing early on a group error). */
async function waitForMessages(groups, count, what) {
  const list = Array.isArray(groups) ? groups : [groups]
  const total = () => list.reduce((n, g) => n + g.messages.length, 0)
  await waitFor(
    () => {
      const errors = groupErrors(...list)
      if (errors.length) throw new Error(errors.join('; '))
      return total() >= count
    },
    {
      timeoutMs: 12_000,
      describe: () => `${what}: ${total()} of ${count} messages; errors: ${groupErrors(...list).join('; ') || 'none'}`,
    }
  )
}

/** Offsets committed by `groupId` for partitions 0..n-1 of `topic`, through kafka-node (OffsetFetch v1). */
async function committed(groupId, topic, partitions) {
  const client = await connectClient(ctx)
  const offset = new kafka.Offset(client)
  offset.on('error', () => {})
  const payloads = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }))
  const result = await callback('Offset.fetchCommits', cb => offset.fetchCommits(groupId, payloads, cb))
  return result[topic]
}

function close(group, force = false) {
  return callback(`ConsumerGroup.close(${force})`, cb => group.close(force, cb))
}

test(
  'ConsumerGroup (roundrobin, earliest): consumes everything, commits, and a new member resumes after the commit',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-group-commit')
    const partitions = 3
    await createTopicWithKafkajs(topic, partitions)
    const next = new Array(partitions).fill(0)
    const first = await produce(topic, { prefix: 'first', count: 9, partitions, next })

    const groupId = uniqueTopic('kn-group')
    const member = await startConsumerGroup(ctx, [topic], { groupId })
    assert.deepEqual(assignmentOf(member), [`${topic}:0`, `${topic}:1`, `${topic}:2`])
    assert.equal(member.protocols[0].name, 'roundrobin')
    await waitForMessages(member, first.length, 'first member')
    assert.deepEqual(byPartitionOffset(member.messages), first)

    // commitOffsetsOnFirstJoin stored the earliest offsets when the group was new; now commit
    // what was consumed (the next offset of each partition).
    await callback('ConsumerGroup.commit', cb => member.commit(true, cb))
    assert.deepEqual(await committed(groupId, topic, partitions), { 0: 3, 1: 3, 2: 3 })
    // kafkajs sees the same committed offsets (current OffsetFetch).
    const admin = await ctx.admin()
    const [fetched] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(
      fetched.partitions.map(p => [p.partition, p.offset]).sort((a, b) => a[0] - b[0]),
      [
        [0, '3'],
        [1, '3'],
        [2, '3'],
      ]
    )
    await close(member)
    assert.deepEqual(groupErrors(member), [])

    // More records while the group is empty; a new member of the same group starts from the
    // committed offsets: exactly the new records, none of the first ones again.
    const second = await produce(topic, { prefix: 'second', count: 6, partitions, next })
    const resumed = await startConsumerGroup(ctx, [topic], { groupId })
    await waitForMessages(resumed, second.length, 'resumed member')
    // Give it time to (wrongly) deliver anything else.
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.deepEqual(byPartitionOffset(resumed.messages), second)

    // close(true) commits before leaving.
    await close(resumed, true)
    assert.deepEqual(await committed(groupId, topic, partitions), { 0: 5, 1: 5, 2: 5 })
    assert.deepEqual(groupErrors(resumed), [])
  })
)

test(
  'ConsumerGroup rebalance: two members split the partitions; after one leaves the other owns all',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('kn-group-rebalance')
    const partitions = 4
    const all = Array.from({ length: partitions }, (_, p) => `${topic}:${p}`)
    await createTopicWithKafkajs(topic, partitions)
    const next = new Array(partitions).fill(0)
    const groupId = uniqueTopic('kn-group')

    const a = await startConsumerGroup(ctx, [topic], { groupId })
    assert.deepEqual(assignmentOf(a), all)

    // The second member's join makes the coordinator rebalance; `a` learns it from its heartbeat
    // (REBALANCE_IN_PROGRESS) and rejoins.
    const b = await startConsumerGroup(ctx, [topic], { groupId })
    let split
    await waitFor(
      () => {
        const errors = groupErrors(a, b)
        if (errors.length) throw new Error(errors.join('; '))
        const ownedByA = assignmentOf(a)
        const ownedByB = assignmentOf(b)
        if (!ownedByA || !ownedByB || ownedByA.length === 0 || ownedByB.length === 0) return false
        if (a.generationId !== b.generationId) return false
        split = { a: ownedByA, b: ownedByB }
        return true
      },
      {
        timeoutMs: 12_000,
        describe: () =>
          `both members to own partitions in one generation (a: ${JSON.stringify(assignmentOf(a))} gen ${
            a.generationId
          }, b: ${JSON.stringify(assignmentOf(b))} gen ${b.generationId}; errors: ${groupErrors(a, b).join('; ') || 'none'})`,
      }
    )
    // Round robin over 4 partitions and 2 members: 2 each, disjoint, covering the topic.
    assert.equal(split.a.length, 2)
    assert.equal(split.b.length, 2)
    assert.deepEqual([...split.a, ...split.b].sort(), all)

    // Every record is consumed exactly once across the group, by the member owning its partition.
    const shared = await produce(topic, { prefix: 'shared', count: 12, partitions, next })
    await waitForMessages([a, b], shared.length, 'two members')
    await new Promise(resolve => setTimeout(resolve, 300))
    const seen = byPartitionOffset([...a.messages, ...b.messages])
    assert.deepEqual(seen, shared)
    for (const m of a.messages) assert.ok(split.a.includes(`${topic}:${m.partition}`), `a got partition ${m.partition}`)
    for (const m of b.messages) assert.ok(split.b.includes(`${topic}:${m.partition}`), `b got partition ${m.partition}`)

    // Both commit (with autoCommit off, a member that rejoins resumes from the committed
    // offsets); b leaves (LeaveGroup v0); a rebalances and takes every partition, resuming b's
    // partitions from b's commits.
    await callback('a.commit', cb => a.commit(true, cb))
    const generationBefore = a.generationId
    await close(b, true)
    await waitFor(
      () => {
        const errors = groupErrors(a)
        if (errors.length) throw new Error(errors.join('; '))
        const owned = assignmentOf(a)
        return a.generationId > generationBefore && owned && owned.length === partitions
      },
      {
        timeoutMs: 12_000,
        describe: () =>
          `a to own all partitions after b left (a: ${JSON.stringify(assignmentOf(a))} gen ${a.generationId})`,
      }
    )
    assert.deepEqual(assignmentOf(a), all)

    const beforeTakeover = a.messages.length
    const after = await produce(topic, { prefix: 'after', count: 8, partitions, next })
    await waitForMessages(a, beforeTakeover + after.length, 'a after the takeover')
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.deepEqual(byPartitionOffset(a.messages.slice(beforeTakeover)), after)
    assert.deepEqual(groupErrors(a, b), [])
  })
)
