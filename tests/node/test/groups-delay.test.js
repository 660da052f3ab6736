'use strict'

// group.initial.rebalance.delay.ms (issue 3): with a non-zero delay, a new group's first join
// waits that long (and not longer), so that members starting together land in one generation.
// This file's broker runs with a 3,000 ms delay (Kafka's default) instead of the harness's 0:
// SLUICE_BIN points at groups-delay-sluice.sh, which swaps the flag's value.

const path = require('node:path')

const DELAY_MS = 3000
process.env.SLUICE_REAL_BIN =
  process.env.SLUICE_BIN || path.resolve(__dirname, '..', '..', '..', 'target', 'debug', 'sluice')
process.env.SLUICE_TEST_INITIAL_DELAY_MS = String(DELAY_MS)
process.env.SLUICE_BIN = path.resolve(__dirname, '..', 'groups-delay-sluice.sh')

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, waitFor } = require('../harness')
const { startMember } = require('../groups-helpers')

const ctx = useBroker()

/** Counts the responses to each request type a consumer receives. */
function countRequests(member) {
  const counts = {}
  member.consumer.on(member.consumer.events.REQUEST, ({ payload }) => {
    counts[payload.apiName] = (counts[payload.apiName] || 0) + 1
  })
  return counts
}

test(
  "a lone member's first join waits the initial rebalance delay, and not longer",
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('delay-one')
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] })
    // The broker's first FindCoordinator creates __consumer_offsets, which takes a while on a
    // busy disk; do it beforehand so that the join below measures only the join.
    assert.equal((await admin.describeGroups([uniqueTopic('warm-up')])).groups[0].state, 'Dead')
    const joinGroupMs = []
    const member = await startMember(ctx, {
      name: 'lone',
      groupId: uniqueTopic('delay-one-group'),
      topic,
      consumerConfig: { rebalanceTimeout: 20_000 },
      beforeRun: m =>
        m.consumer.on(m.consumer.events.REQUEST, ({ payload }) => {
          if (payload.apiName === 'JoinGroup') joinGroupMs.push(payload.duration)
        }),
    })
    await waitFor(() => member.lastJoin, { timeoutMs: 15_000, describe: () => member.describe() })
    const { duration } = member.lastJoin
    console.log(
      `first-join-ms with initial delay ${DELAY_MS}: ${duration} (JoinGroup round trips: ${joinGroupMs.join(', ')} ms)`
    )
    // Two JoinGroups (the first gets MEMBER_ID_REQUIRED at once); the second is held for the
    // delay, and not much longer.
    assert.equal(joinGroupMs.length, 2)
    assert.ok(joinGroupMs[0] < 500, `MEMBER_ID_REQUIRED took ${joinGroupMs[0]} ms`)
    assert.ok(joinGroupMs[1] >= DELAY_MS - 100, `JoinGroup took ${joinGroupMs[1]} ms, less than the delay`)
    assert.ok(joinGroupMs[1] < DELAY_MS + 500, `JoinGroup took ${joinGroupMs[1]} ms, more than the delay`)
    assert.ok(duration < DELAY_MS + 1000, `join took ${duration} ms, much more than the ${DELAY_MS} ms delay`)
    assert.deepEqual(member.partitions(topic), [0])
  })
)

test(
  'two members starting within the delay are assigned in one generation, without a second rebalance',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('delay-two')
    const groupId = uniqueTopic('delay-two-group')
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })
    const options = { groupId, topic, consumerConfig: { rebalanceTimeout: 20_000 } }
    const counts = {}
    const [a, b] = await Promise.all(
      ['A', 'B'].map(name =>
        startMember(ctx, {
          name,
          ...options,
          beforeRun: member => {
            counts[name] = countRequests(member)
          },
        })
      )
    )
    await waitFor(() => a.lastJoin && b.lastJoin, {
      timeoutMs: 20_000,
      describe: () => `${a.describe()} | ${b.describe()}`,
    })
    assert.deepEqual([...a.partitions(topic), ...b.partitions(topic)].sort(), [0, 1])
    assert.equal(a.joins.length, 1, a.describe())
    assert.equal(b.joins.length, 1, b.describe())
    // One SyncGroup each: no member had to rejoin because the other arrived late.
    for (const [name, c] of Object.entries(counts)) assert.equal(c.SyncGroup, 1, `${name} requests: ${JSON.stringify(c)}`)
    const [group] = (await admin.describeGroups([groupId])).groups
    assert.equal(group.state, 'Stable')
    assert.equal(group.members.length, 2)
  })
)
