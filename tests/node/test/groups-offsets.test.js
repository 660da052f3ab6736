'use strict'

// Committed offsets as kafkajs uses them (issue 3): a group resumes where it committed, also
// across a broker restart (SIGTERM) and a broker crash (SIGKILL, commits are durable once
// acknowledged); consumer.seek, pause/resume, autoCommit:false with manual commitOffsets.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, waitFor, withTimeout } = require('../harness')
const { range, restartBroker, startMember, waitForCommitted } = require('../groups-helpers')

const ctx = useBroker()

async function createTopic(topic, numPartitions) {
  const admin = await ctx.admin()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }), true)
  return admin
}

/** Sends `count` messages round-robin over `partitions` partitions with values `${prefix}-${i}`. */
async function produce(topic, { prefix, count, partitions }) {
  const producer = await ctx.producer()
  await producer.send({
    topic,
    acks: -1,
    messages: range(0, count).map(i => ({ partition: i % partitions, value: `${prefix}-${i}` })),
  })
  await ctx.disconnectAll()
  return range(0, count).map(i => `${prefix}-${i}`)
}

const sorted = values => [...values].sort()

/**
 * One consumer session in `groupId`: waits for `count` messages, then disconnects (kafkajs
 * commits after each batch). Returns the values received.
 */
async function session({ topic, groupId, count }) {
  const member = await startMember(ctx, { name: 'session', groupId, topic })
  await waitFor(() => member.messages.length >= count, {
    timeoutMs: 15_000,
    describe: () => `${count} messages; ${member.describe()}`,
  })
  await member.disconnect()
  assert.equal(member.crashes.length, 0, member.describe())
  return member.values()
}

/** Runs the consume/commit → disconnect → produce → reconnect scenario with `between` in the middle. */
async function resumeScenario(prefix, between) {
  const topic = uniqueTopic(prefix)
  const groupId = uniqueTopic(`${prefix}-group`)
  await createTopic(topic, 2)

  const first = await produce(topic, { prefix: 'old', count: 10, partitions: 2 })
  assert.deepEqual(sorted(await session({ topic, groupId, count: 10 })), sorted(first))
  const admin = await ctx.admin()
  await waitForCommitted(admin, { groupId, topic, expected: { 0: 5, 1: 5 } })
  await ctx.disconnectAll()

  await between()

  const second = await produce(topic, { prefix: 'new', count: 6, partitions: 2 })
  // subscribe({ fromBeginning: true }) only applies without a committed offset: the group
  // continues where it committed and gets exactly the new messages (offsets 5..7 of each
  // partition, which would come after any re-delivered old ones).
  const member = await startMember(ctx, { name: 'resumed', groupId, topic })
  await waitFor(() => member.messages.length >= 6, {
    timeoutMs: 15_000,
    describe: () => `the 6 new messages; ${member.describe()}`,
  })
  assert.deepEqual(sorted(member.values()), sorted(second))
  assert.deepEqual(
    member.messages.map(m => `${m.partition}:${m.offset}`).sort(),
    ['0:5', '0:6', '0:7', '1:5', '1:6', '1:7']
  )
  await member.disconnect()
  const admin2 = await ctx.admin()
  await waitForCommitted(admin2, { groupId, topic, expected: { 0: 8, 1: 8 } })
}

test(
  'consume and commit, disconnect, produce more, reconnect in the same group: only the new messages arrive',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    await resumeScenario('resume', async () => {})
  })
)

test(
  'the same across a broker restart (SIGTERM, same data dir and port) between the two runs',
  { timeout: 45_000 },
  ctx.wrap(async () => {
    await resumeScenario('resume-restart', async () => {
      const exit = await restartBroker(ctx)
      assert.deepEqual({ code: exit.code, signal: exit.signal, killed: exit.killed }, { code: 0, signal: null, killed: false })
    })
  })
)

test(
  'the same after kill -9 of the broker: an acknowledged commit is durable',
  { timeout: 45_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('crash')
    const groupId = uniqueTopic('crash-group')
    await createTopic(topic, 2)
    await produce(topic, { prefix: 'old', count: 10, partitions: 2 })

    // Manual commits only, so the commit below is the one acknowledged before the crash.
    const member = await startMember(ctx, {
      name: 'before-crash',
      groupId,
      topic,
      runConfig: { autoCommit: false },
    })
    await waitFor(() => member.messages.length >= 10, {
      timeoutMs: 15_000,
      describe: () => `10 messages; ${member.describe()}`,
    })
    await member.consumer.commitOffsets([
      { topic, partition: 0, offset: '5' },
      { topic, partition: 1, offset: '4' },
    ])
    // Crash the broker right after the acknowledgement, with the member still in the group.
    const exit = await restartBroker(ctx, { kill: true })
    assert.equal(exit.signal, 'SIGKILL')
    await member.disconnect().catch(() => {})

    const admin = await ctx.admin()
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(
      offsets.partitions.map(p => [p.partition, p.offset]).sort((x, y) => x[0] - y[0]),
      [
        [0, '5'],
        [1, '4'],
      ]
    )
    await ctx.disconnectAll()

    // Partition 1 resumes at offset 4 (old-9 was consumed but not committed), then new ones.
    const second = await produce(topic, { prefix: 'new', count: 4, partitions: 2 })
    const resumed = await startMember(ctx, { name: 'after-crash', groupId, topic })
    await waitFor(() => resumed.messages.length >= 5, {
      timeoutMs: 20_000,
      describe: () => `5 messages after the crash; ${resumed.describe()}`,
    })
    assert.deepEqual(sorted(resumed.values()), sorted(['old-9', ...second]))
    assert.deepEqual(resumed.messages.map(m => `${m.partition}:${m.offset}`).sort(), [
      '0:5',
      '0:6',
      '1:4',
      '1:5',
      '1:6',
    ])
  })
)

test(
  'consumer.seek moves the position of a running consumer, forwards and back',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('seek')
    await createTopic(topic, 1)
    await produce(topic, { prefix: 'seek', count: 20, partitions: 1 })
    // fromBeginning: false → the new group starts at the end (offset 20): nothing arrives
    // unless the consumer seeks.
    const member = await startMember(ctx, {
      name: 'seeker',
      groupId: uniqueTopic('seek-group'),
      topic,
      fromBeginning: false,
    })
    await waitFor(() => member.partitions(topic).length === 1, { describe: () => member.describe() })
    member.consumer.seek({ topic, partition: 0, offset: '15' })
    await waitFor(() => member.messages.length >= 5, { describe: () => `5 messages; ${member.describe()}` })
    assert.deepEqual(
      member.messages.map(m => m.offset),
      range(15, 20).map(String)
    )
    member.consumer.seek({ topic, partition: 0, offset: '5' })
    await waitFor(() => member.messages.length >= 20, { describe: () => `20 messages; ${member.describe()}` })
    assert.deepEqual(
      member.messages.map(m => m.offset),
      [...range(15, 20), ...range(5, 20)].map(String)
    )
    assert.deepEqual(
      member.values().slice(5),
      range(5, 20).map(i => `seek-${i}`)
    )
  })
)

test(
  'pause stops delivery from a partition, resume restarts it where it stopped',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('pause')
    await createTopic(topic, 2)
    const member = await startMember(ctx, { name: 'pauser', groupId: uniqueTopic('pause-group'), topic })
    await waitFor(() => member.partitions(topic).length === 2, { describe: () => member.describe() })

    member.consumer.pause([{ topic, partitions: [0] }])
    assert.deepEqual(member.consumer.paused(), [{ topic, partitions: [0] }])
    const producer = await ctx.producer()
    // Partition 0 first: had it not been paused, its messages would come in the same fetch
    // as (or before) partition 1's.
    await producer.send({ topic, messages: range(0, 5).map(i => ({ partition: 0, value: `p0-${i}` })) })
    await producer.send({ topic, messages: range(0, 5).map(i => ({ partition: 1, value: `p1-${i}` })) })
    await waitFor(() => member.messages.length >= 5, { describe: () => `partition 1's messages; ${member.describe()}` })
    assert.deepEqual(member.values(), range(0, 5).map(i => `p1-${i}`))

    member.consumer.resume([{ topic, partitions: [0] }])
    assert.deepEqual(member.consumer.paused(), [])
    await waitFor(() => member.messages.length >= 10, { describe: () => `partition 0's messages; ${member.describe()}` })
    assert.deepEqual(member.values().slice(5), range(0, 5).map(i => `p0-${i}`))

    // Pausing the whole topic, then resuming it.
    member.consumer.pause([{ topic }])
    assert.deepEqual(member.consumer.paused(), [{ topic, partitions: [0, 1] }])
    await producer.send({ topic, messages: [{ partition: 0, value: 'late-0' }, { partition: 1, value: 'late-1' }] })
    member.consumer.resume([{ topic }])
    assert.deepEqual(member.consumer.paused(), [])
    await waitFor(() => member.messages.length >= 12, { describe: () => `the late messages; ${member.describe()}` })
    assert.deepEqual(sorted(member.values().slice(10)), ['late-0', 'late-1'])
    assert.equal(member.crashes.length, 0)
  })
)

test(
  'autoCommit:false with manual commitOffsets: a new consumer in the group starts at the committed offset',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('manual')
    const groupId = uniqueTopic('manual-group')
    const admin = await createTopic(topic, 1)
    await produce(topic, { prefix: 'manual', count: 10, partitions: 1 })

    const first = await startMember(ctx, { name: 'manual', groupId, topic, runConfig: { autoCommit: false } })
    await waitFor(() => first.messages.length >= 10, { describe: () => first.describe() })
    assert.deepEqual(first.values(), range(0, 10).map(i => `manual-${i}`))
    // Nothing is committed automatically.
    let [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(offsets.partitions, [{ partition: 0, offset: '-1', metadata: null }])

    await first.consumer.commitOffsets([{ topic, partition: 0, offset: '6', metadata: 'processed up to 5' }])
    ;[offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(offsets.partitions, [{ partition: 0, offset: '6', metadata: 'processed up to 5' }])
    await first.disconnect()
    // Disconnecting does not commit the 10 consumed messages (autoCommit is off).
    ;[offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(offsets.partitions, [{ partition: 0, offset: '6', metadata: 'processed up to 5' }])

    const second = await startMember(ctx, { name: 'next', groupId, topic, runConfig: { autoCommit: false } })
    await waitFor(() => second.messages.length >= 4, { describe: () => second.describe() })
    assert.deepEqual(
      second.messages.map(m => m.offset),
      ['6', '7', '8', '9']
    )
    assert.equal(second.crashes.length, 0)
    await withTimeout(second.disconnect(), 15_000, 'disconnect')
  })
)
