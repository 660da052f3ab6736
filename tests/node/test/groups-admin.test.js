'use strict'

// Group administration with the kafkajs admin client (issue 3): describeGroups, listGroups,
// fetchOffsets, resetOffsets, setOffsets, deleteGroups; and Kafka's errors for bad JoinGroup
// input (empty group id, session timeout out of bounds) and bad heartbeats.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { AssignerProtocol } = require('kafkajs')
const { protocolErrorOf, useBroker, uniqueTopic, waitFor } = require('../harness')
const { range, rawBroker, startMember, waitForCommitted } = require('../groups-helpers')

const ctx = useBroker()

async function createTopic(admin, topic, numPartitions) {
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }), true)
}

async function produce(topic, { prefix, count, partitions }) {
  const producer = await ctx.producer()
  await producer.send({
    topic,
    acks: -1,
    messages: range(0, count).map(i => ({ partition: i % partitions, value: `${prefix}-${i}` })),
  })
}

function byPartition(partitions) {
  return partitions
    .map(({ partition, offset, metadata }) => ({ partition, offset, metadata }))
    .sort((a, b) => a.partition - b.partition)
}

test(
  'describeGroups, listGroups and fetchOffsets of an active, an empty and an unknown group',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('describe')
    const groupId = uniqueTopic('describe-group')
    await createTopic(admin, topic, 2)
    await produce(topic, { prefix: 'd', count: 6, partitions: 2 })

    const member = await startMember(ctx, { name: 'described', groupId, topic })
    await waitFor(() => member.messages.length >= 6, { describe: () => member.describe() })
    await waitForCommitted(admin, { groupId, topic, expected: { 0: 3, 1: 3 } })

    const { groups } = await admin.describeGroups([groupId])
    assert.equal(groups.length, 1)
    const [group] = groups
    assert.equal(group.groupId, groupId)
    assert.equal(group.errorCode, 0)
    assert.equal(group.state, 'Stable')
    assert.equal(group.protocolType, 'consumer')
    assert.equal(group.protocol, 'RoundRobinAssigner')
    assert.equal(group.members.length, 1)
    const [m] = group.members
    assert.equal(m.memberId, member.memberId)
    assert.equal(m.clientId, 'sluice-node-tests')
    assert.match(m.clientHost, /127\.0\.0\.1/)
    assert.deepEqual(AssignerProtocol.MemberMetadata.decode(m.memberMetadata).topics, [topic])
    const assignment = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
    assert.deepEqual(
      Object.fromEntries(Object.entries(assignment.assignment).map(([t, ps]) => [t, [...ps].sort()])),
      { [topic]: [0, 1] }
    )

    const listed = (await admin.listGroups()).groups
    assert.deepEqual(
      listed.filter(g => g.groupId === groupId),
      [{ groupId, protocolType: 'consumer' }]
    )

    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.equal(offsets.topic, topic)
    assert.deepEqual(byPartition(offsets.partitions), [
      { partition: 0, offset: '3', metadata: null },
      { partition: 1, offset: '3', metadata: null },
    ])

    // After the member leaves the group is Empty but keeps its offsets.
    await member.disconnect()
    const [empty] = (await admin.describeGroups([groupId])).groups
    assert.equal(empty.state, 'Empty')
    assert.equal(empty.protocolType, 'consumer')
    assert.equal(empty.protocol, '')
    assert.deepEqual(empty.members, [])
    assert.ok((await admin.listGroups()).groups.some(g => g.groupId === groupId), 'empty group still listed')

    // A group that never existed: Kafka answers Dead with no error (DescribeGroups < v6),
    // and fetchOffsets gives -1 for every partition.
    const unknown = uniqueTopic('never-existed')
    const [dead] = (await admin.describeGroups([unknown])).groups
    assert.deepEqual(
      { groupId: dead.groupId, errorCode: dead.errorCode, state: dead.state, protocolType: dead.protocolType, protocol: dead.protocol, members: dead.members },
      { groupId: unknown, errorCode: 0, state: 'Dead', protocolType: '', protocol: '', members: [] }
    )
    const [none] = await admin.fetchOffsets({ groupId: unknown, topics: [topic] })
    assert.deepEqual(byPartition(none.partitions), [
      { partition: 0, offset: '-1', metadata: null },
      { partition: 1, offset: '-1', metadata: null },
    ])
  })
)

test(
  'resetOffsets (earliest, latest) and setOffsets move an inactive group; the next consumer starts there',
  { timeout: 40_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('reset')
    const groupId = uniqueTopic('reset-group')
    await createTopic(admin, topic, 2)
    await produce(topic, { prefix: 'r', count: 10, partitions: 2 })

    // Consume everything and leave: committed 5/5.
    const member = await startMember(ctx, { name: 'first', groupId, topic })
    await waitFor(() => member.messages.length >= 10, { describe: () => member.describe() })
    await member.disconnect()
    await waitForCommitted(admin, { groupId, topic, expected: { 0: 5, 1: 5 } })

    // kafkajs commits the special offsets themselves (-2 earliest, -1 latest), exactly as
    // against Apache Kafka (kafkajs's own resetOffsets tests expect '-2' and '-1'); the
    // consumer resolves them when it starts.
    await admin.resetOffsets({ groupId, topic, earliest: true })
    const [earliest] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(byPartition(earliest.partitions), [
      { partition: 0, offset: '-2', metadata: null },
      { partition: 1, offset: '-2', metadata: null },
    ])
    const again = await startMember(ctx, { name: 'from-earliest', groupId, topic })
    await waitFor(() => again.messages.length >= 10, { describe: () => again.describe() })
    assert.deepEqual(again.values().sort(), range(0, 10).map(i => `r-${i}`).sort())
    await again.disconnect()

    await admin.setOffsets({
      groupId,
      topic,
      partitions: [
        { partition: 0, offset: '3' },
        { partition: 1, offset: '1' },
      ],
    })
    const [set] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(byPartition(set.partitions), [
      { partition: 0, offset: '3', metadata: null },
      { partition: 1, offset: '1', metadata: null },
    ])
    const fromSet = await startMember(ctx, { name: 'from-set', groupId, topic })
    await waitFor(() => fromSet.messages.length >= 6, { describe: () => fromSet.describe() })
    assert.deepEqual(fromSet.messages.map(m => `${m.partition}:${m.offset}`).sort(), [
      '0:3',
      '0:4',
      '1:1',
      '1:2',
      '1:3',
      '1:4',
    ])
    await fromSet.disconnect()

    await admin.resetOffsets({ groupId, topic })
    const [latest] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(byPartition(latest.partitions), [
      { partition: 0, offset: '-1', metadata: null },
      { partition: 1, offset: '-1', metadata: null },
    ])
    // A committed -1 reads like "no committed offset" to kafkajs (a fromBeginning consumer
    // would start at 0), so resolve it: fetchOffsets({ resolveOffsets: true }) turns -1 into
    // the high watermark and commits that.
    const [resolved] = await admin.fetchOffsets({ groupId, topics: [topic], resolveOffsets: true })
    assert.deepEqual(byPartition(resolved.partitions), [
      { partition: 0, offset: '5', metadata: null },
      { partition: 1, offset: '5', metadata: null },
    ])
    await waitForCommitted(admin, { groupId, topic, expected: { 0: 5, 1: 5 } })
    await produce(topic, { prefix: 'after-latest', count: 2, partitions: 2 })
    const fromLatest = await startMember(ctx, { name: 'from-latest', groupId, topic })
    await waitFor(() => fromLatest.messages.length >= 2, { describe: () => fromLatest.describe() })
    assert.deepEqual(fromLatest.messages.map(m => `${m.partition}:${m.offset}:${m.value}`).sort(), [
      '0:5:after-latest-0',
      '1:5:after-latest-1',
    ])

    // kafkajs refuses to set offsets of a group with a running member (it checks the state
    // with DescribeGroups first).
    await assert.rejects(admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '0' }] }), {
      name: 'KafkaJSNonRetriableError',
      message: 'The consumer group must have no running instances, current state: Stable',
    })
  })
)

test(
  'deleteGroups fails with NON_EMPTY_GROUP while a member is active, then deletes the group and its offsets',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('delete')
    const groupId = uniqueTopic('delete-group')
    await createTopic(admin, topic, 1)
    await produce(topic, { prefix: 'x', count: 3, partitions: 1 })
    const member = await startMember(ctx, { name: 'active', groupId, topic })
    await waitFor(() => member.messages.length >= 3, { describe: () => member.describe() })
    await waitForCommitted(admin, { groupId, topic, expected: { 0: 3 } })

    let error
    await assert.rejects(admin.deleteGroups([groupId]), e => {
      error = e
      return true
    })
    assert.equal(error.name, 'KafkaJSDeleteGroupsError')
    assert.equal(error.groups.length, 1)
    assert.equal(error.groups[0].groupId, groupId)
    assert.equal(error.groups[0].errorCode, 68)
    assert.equal(error.groups[0].error.name, 'KafkaJSProtocolError')
    assert.equal(error.groups[0].error.type, 'NON_EMPTY_GROUP')
    // Nothing happened to the group.
    const [still] = (await admin.describeGroups([groupId])).groups
    assert.equal(still.state, 'Stable')
    assert.equal(still.members.length, 1)

    await member.disconnect()
    assert.deepEqual(await admin.deleteGroups([groupId]), [{ groupId, errorCode: 0 }])
    const [dead] = (await admin.describeGroups([groupId])).groups
    assert.equal(dead.state, 'Dead')
    assert.ok(!(await admin.listGroups()).groups.some(g => g.groupId === groupId), 'deleted group not listed')
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(byPartition(offsets.partitions), [{ partition: 0, offset: '-1', metadata: null }])

    // Deleting it again: GROUP_ID_NOT_FOUND.
    let again
    await assert.rejects(admin.deleteGroups([groupId]), e => {
      again = e
      return true
    })
    assert.equal(again.name, 'KafkaJSDeleteGroupsError')
    assert.equal(again.groups[0].error.type, 'GROUP_ID_NOT_FOUND')

    // A new consumer in the deleted group starts from scratch (fromBeginning).
    const fresh = await startMember(ctx, { name: 'fresh', groupId, topic })
    await waitFor(() => fresh.messages.length >= 3, { describe: () => fresh.describe() })
    assert.deepEqual(fresh.values(), ['x-0', 'x-1', 'x-2'])
  })
)

test(
  'kafkajs refuses groupId "" itself; a JoinGroup with an empty group id gets INVALID_GROUP_ID',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    // kafkajs does not let a consumer use an empty group id, so the JoinGroup is sent with
    // kafkajs's internal Broker API instead.
    assert.throws(() => ctx.kafka().consumer({ groupId: '' }), {
      name: 'KafkaJSNonRetriableError',
      message: 'Consumer groupId must be a non-empty string.',
    })
    const topic = uniqueTopic('bad-join')
    const { broker } = await rawBroker(ctx)
    const groupProtocols = [
      { name: 'RoundRobinAssigner', metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics: [topic] }) },
    ]
    await assert.rejects(
      broker.joinGroup({ groupId: '', sessionTimeout: 10_000, rebalanceTimeout: 10_000, groupProtocols }),
      e => protocolErrorOf(e)?.type === 'INVALID_GROUP_ID'
    )
    // Session timeouts outside [group.min.session.timeout.ms, group.max.session.timeout.ms]
    // = [6000, 1800000].
    for (const sessionTimeout of [5999, 1_800_001]) {
      const groupId = uniqueTopic('bad-timeout')
      await assert.rejects(
        broker.joinGroup({ groupId, sessionTimeout, rebalanceTimeout: 10_000, groupProtocols }),
        e => protocolErrorOf(e)?.type === 'INVALID_SESSION_TIMEOUT',
        `session timeout ${sessionTimeout}`
      )
    }
    // The bounds themselves are accepted (the member then leaves).
    for (const sessionTimeout of [6000, 1_800_000]) {
      const groupId = uniqueTopic('ok-timeout')
      const joined = await broker.joinGroup({ groupId, sessionTimeout, rebalanceTimeout: 10_000, groupProtocols })
      assert.equal(joined.leaderId, joined.memberId)
      await broker.leaveGroup({ groupId, memberId: joined.memberId })
    }
  })
)

test(
  'a kafkajs consumer with sessionTimeout below the minimum crashes with INVALID_SESSION_TIMEOUT and leaves no group behind',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('short-session')
    const groupId = uniqueTopic('short-session-group')
    await createTopic(admin, topic, 1)
    const consumer = ctx.track(
      ctx.kafka().consumer({
        groupId,
        sessionTimeout: 1000,
        heartbeatInterval: 100,
        retry: { retries: 0, restartOnFailure: async () => false },
      })
    )
    const crashed = new Promise(resolve => consumer.on(consumer.events.CRASH, e => resolve(e.payload)))
    await consumer.connect()
    await consumer.subscribe({ topic })
    await consumer.run({ eachMessage: async () => {} })
    const crash = await crashed
    assert.equal(protocolErrorOf(crash.error)?.type, 'INVALID_SESSION_TIMEOUT', String(crash.error))
    assert.equal(crash.restart, false)

    const [group] = (await admin.describeGroups([groupId])).groups
    assert.equal(group.state, 'Dead')
    assert.ok(!(await admin.listGroups()).groups.some(g => g.groupId === groupId))
  })
)

test(
  'a Heartbeat from an unknown member or with a stale generation gets Kafka\'s error and the group stays Stable',
  { timeout: 20_000 },
  ctx.wrap(async () => {
    const admin = await ctx.admin()
    const topic = uniqueTopic('hb')
    const groupId = uniqueTopic('hb-group')
    await createTopic(admin, topic, 1)
    const member = await startMember(ctx, { name: 'hb', groupId, topic })
    await waitFor(() => member.partitions(topic).length === 1, { describe: () => member.describe() })
    const [{ members }] = (await admin.describeGroups([groupId])).groups
    assert.equal(members.length, 1)

    const { broker } = await rawBroker(ctx)
    await assert.rejects(
      broker.heartbeat({ groupId, groupGenerationId: 1, memberId: 'no-such-member' }),
      e => protocolErrorOf(e)?.type === 'UNKNOWN_MEMBER_ID'
    )
    await assert.rejects(
      broker.heartbeat({ groupId, groupGenerationId: 999, memberId: member.memberId }),
      e => protocolErrorOf(e)?.type === 'ILLEGAL_GENERATION'
    )

    // The real member is unaffected: still Stable, same member, still consuming.
    const [group] = (await admin.describeGroups([groupId])).groups
    assert.equal(group.state, 'Stable')
    assert.deepEqual(group.members.map(m => m.memberId), [member.memberId])
    await produce(topic, { prefix: 'hb', count: 1, partitions: 1 })
    await waitFor(() => member.messages.length >= 1, { describe: () => member.describe() })
    assert.equal(member.joins.length, 1, 'no rebalance happened')
    assert.equal(member.crashes.length, 0)
  })
)
