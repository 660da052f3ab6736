'use strict'

// Transactional kafkajs producers (issue 5, "Done means"): one transaction committed and one
// aborted, as seen by readUncommitted:false and readUncommitted:true consumers; an open
// transaction holds back the last stable offset; a second producer with the same
// transactionalId fences the first.
//
// Offsets are asserted exactly: in Kafka every commit/abort marker takes one offset of each
// partition in the transaction, and consumers never see the markers.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, protocolErrorOf, withTimeout } = require('../harness')
const { startMember } = require('../groups-helpers')
const { READ_COMMITTED, READ_UNCOMMITTED, byPartition, listEndOffsets, until } = require('../transactions-helpers')

const ctx = useBroker()

async function createTopic(topic, numPartitions) {
  const admin = await ctx.admin()
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }), true)
}

function transactionalProducer(transactionalId) {
  return ctx.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
}

/**
 * Waits until the last stable offset and the high watermark of every partition of `topic` are
 * both `expected` ({ partition: offset }). Kafka answers EndTxn once the outcome is in the
 * transaction log and writes the markers afterwards, so a write made right after commit() or
 * abort() could otherwise land before a marker.
 */
async function waitForMarkers(topic, expected) {
  let last
  await until(
    async () => {
      last = {
        committed: await listEndOffsets(ctx, topic, READ_COMMITTED),
        uncommitted: await listEndOffsets(ctx, topic, READ_UNCOMMITTED),
      }
      return (
        JSON.stringify(last.committed) === JSON.stringify(expected) &&
        JSON.stringify(last.uncommitted) === JSON.stringify(expected)
      )
    },
    () => `LSO and high watermark of ${topic} to be ${JSON.stringify(expected)}, last ${JSON.stringify(last)}`
  )
}

/** A plain (non-transactional) write of `value` to each partition in `partitions`. */
async function writeSentinels(topic, partitions, value = 'end') {
  const producer = await ctx.producer()
  await producer.send({ topic, acks: -1, messages: partitions.map(partition => ({ partition, value })) })
}

/**
 * Consumes `topic` with a new group until the sentinel 'end' arrived from every partition in
 * `partitions`; returns { partition: [{ offset, value }] } in offset order.
 */
async function readToSentinels(topic, partitions, { readUncommitted }) {
  const messages = await ctx.consume({
    topic,
    until: msgs => partitions.every(p => msgs.some(m => m.partition === p && m.value.toString() === 'end')),
    consumerConfig: { readUncommitted },
  })
  const grouped = byPartition(messages)
  return Object.fromEntries(
    Object.entries(grouped).map(([p, list]) => [p, list.map(m => ({ offset: Number(m.offset), value: m.value.toString() }))])
  )
}

/** The INVALID_PRODUCER_EPOCH error kafkajs surfaces for a fenced (zombie) producer. */
function assertFenced(error, what) {
  assert.ok(error, `${what} must fail`)
  // kafkajs throws the protocol error itself (not wrapped): non-retriable, code 47.
  assert.equal(error.name, 'KafkaJSProtocolError', `${what}: ${error.name}: ${error.message}`)
  const protocol = protocolErrorOf(error)
  assert.deepEqual(
    { type: protocol.type, code: protocol.code, retriable: protocol.retriable },
    { type: 'INVALID_PRODUCER_EPOCH', code: 47, retriable: false },
    what
  )
}

async function failureOf(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  return null
}

test(
  'a transactional producer commits one transaction and aborts a second: read_committed sees exactly the committed records',
  ctx.wrap(async () => {
    const topic = uniqueTopic('txn-commit-abort')
    await createTopic(topic, 2)
    const producer = await transactionalProducer(uniqueTopic('tid'))

    const committed = await producer.transaction()
    const committedResult = await committed.send({
      topic,
      messages: [0, 1, 2, 3, 4, 5].map(i => ({ partition: i % 2, key: `k${i}`, value: `committed-${i}` })),
    })
    assert.deepEqual(
      committedResult.map(r => [r.partition, r.errorCode, r.baseOffset]).sort(),
      [
        [0, 0, '0'],
        [1, 0, '0'],
      ]
    )
    await committed.commit()
    assert.equal(committed.isActive(), false)

    const aborted = await producer.transaction()
    const abortedResult = await aborted.send({
      topic,
      messages: [0, 1, 2, 3, 4, 5].map(i => ({ partition: i % 2, key: `k${i}`, value: `aborted-${i}` })),
    })
    // Offset 3 of each partition is the first transaction's commit marker.
    assert.deepEqual(
      abortedResult.map(r => [r.partition, r.errorCode, r.baseOffset]).sort(),
      [
        [0, 0, '4'],
        [1, 0, '4'],
      ]
    )
    await aborted.abort()
    assert.equal(aborted.isActive(), false)

    // Offsets per partition: 0-2 committed, 3 commit marker, 4-6 aborted, 7 abort marker, 8 'end'.
    await waitForMarkers(topic, { 0: 8, 1: 8 })
    await writeSentinels(topic, [0, 1])
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_COMMITTED), { 0: 9, 1: 9 })
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_UNCOMMITTED), { 0: 9, 1: 9 })

    const readCommitted = await readToSentinels(topic, [0, 1], { readUncommitted: false })
    assert.deepEqual(readCommitted, {
      0: [
        { offset: 0, value: 'committed-0' },
        { offset: 1, value: 'committed-2' },
        { offset: 2, value: 'committed-4' },
        { offset: 8, value: 'end' },
      ],
      1: [
        { offset: 0, value: 'committed-1' },
        { offset: 1, value: 'committed-3' },
        { offset: 2, value: 'committed-5' },
        { offset: 8, value: 'end' },
      ],
    })

    const readUncommitted = await readToSentinels(topic, [0, 1], { readUncommitted: true })
    assert.deepEqual(readUncommitted, {
      0: [
        { offset: 0, value: 'committed-0' },
        { offset: 1, value: 'committed-2' },
        { offset: 2, value: 'committed-4' },
        { offset: 4, value: 'aborted-0' },
        { offset: 5, value: 'aborted-2' },
        { offset: 6, value: 'aborted-4' },
        { offset: 8, value: 'end' },
      ],
      1: [
        { offset: 0, value: 'committed-1' },
        { offset: 1, value: 'committed-3' },
        { offset: 2, value: 'committed-5' },
        { offset: 4, value: 'aborted-1' },
        { offset: 5, value: 'aborted-3' },
        { offset: 6, value: 'aborted-5' },
        { offset: 8, value: 'end' },
      ],
    })
  })
)

test(
  'an open transaction holds back the last stable offset; read_committed consumers see what follows it only after it ends',
  ctx.wrap(async () => {
    const topic = uniqueTopic('txn-lso')
    await createTopic(topic, 1)
    const plain = await ctx.producer()
    await plain.send({ topic, acks: -1, messages: [{ partition: 0, value: 'before' }] })

    const producer = await transactionalProducer(uniqueTopic('tid'))
    const open = await producer.transaction()
    await open.send({ topic, messages: [{ partition: 0, value: 'open-1' }] })
    await plain.send({ topic, acks: -1, messages: [{ partition: 0, value: 'after' }] })

    // LSO = first offset of the open transaction; the high watermark is past 'after'.
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_COMMITTED), { 0: 1 })
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_UNCOMMITTED), { 0: 3 })

    // read_uncommitted: everything, at once.
    const uncommitted = await ctx.consume({ topic, count: 3, consumerConfig: { readUncommitted: true } })
    assert.deepEqual(
      uncommitted.map(m => [Number(m.offset), m.value.toString()]),
      [
        [0, 'before'],
        [1, 'open-1'],
        [2, 'after'],
      ]
    )

    // read_committed: 'before', then nothing while the transaction is open. Fetches made after
    // 'before' arrived start at offset 1 and find the data there held back; count a few.
    let fetchesAfterBefore = 0
    const member = await startMember(ctx, {
      name: 'read-committed',
      groupId: uniqueTopic('lso-group'),
      topic,
      consumerConfig: { readUncommitted: false },
      beforeRun: m =>
        m.consumer.on(m.consumer.events.FETCH, () => {
          if (m.messages.length > 0) fetchesAfterBefore += 1
        }),
    })
    await until(
      () => member.messages.length >= 1 && fetchesAfterBefore >= 3,
      () => `'before' and 3 more fetches; ${member.describe()} fetches=${fetchesAfterBefore}`
    )
    assert.deepEqual(
      member.messages.map(m => [Number(m.offset), m.value]),
      [[0, 'before']],
      'nothing past the LSO while the transaction is open'
    )

    // Abort: offset 3 is the abort marker; 'after' (offset 2) becomes visible, 'open-1' never.
    await open.abort()
    await until(
      () => member.messages.length >= 2,
      () => `'after' once the transaction is aborted; ${member.describe()}`
    )
    assert.deepEqual(
      member.messages.map(m => [Number(m.offset), m.value]),
      [
        [0, 'before'],
        [2, 'after'],
      ]
    )
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_COMMITTED), { 0: 4 })
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_UNCOMMITTED), { 0: 4 })
    await member.disconnect()
    assert.equal(member.crashes.length, 0, member.describe())
  })
)

test(
  'fencing: a second producer with the same transactionalId fences the first (INVALID_PRODUCER_EPOCH)',
  ctx.wrap(async () => {
    const topic = uniqueTopic('txn-fence')
    await createTopic(topic, 2)
    const transactionalId = uniqueTopic('tid')

    const zombie = await transactionalProducer(transactionalId)
    const zombieTxn = await zombie.transaction()
    await zombieTxn.send({ topic, messages: [{ partition: 0, value: 'zombie-1' }] })

    // The second producer's InitProducerId bumps the epoch and aborts the zombie's transaction
    // (kafkajs retries CONCURRENT_TRANSACTIONS until the abort is complete).
    const fresh = await transactionalProducer(transactionalId)
    const freshTxn = await withTimeout(fresh.transaction(), 20_000, 'the second producer to initialize')

    // The zombie's next operations all fail as fenced. Kafka answers the old epoch with
    // INVALID_PRODUCER_EPOCH (47) on Produce, and on AddPartitionsToTxn / AddOffsetsToTxn /
    // EndTxn for the request versions kafkajs 2.2.4 uses (v0/v1): PRODUCER_FENCED (90) only
    // goes to clients that send the versions that know it (InitProducerId v4, AddPartitionsToTxn
    // v2, AddOffsetsToTxn v2, EndTxn v2, TxnOffsetCommit v3); kafkajs does not know code 90.
    assertFenced(
      await failureOf(zombieTxn.send({ topic, messages: [{ partition: 0, value: 'zombie-2' }] })),
      'Produce to a partition already in the transaction'
    )
    assertFenced(
      await failureOf(zombieTxn.send({ topic, messages: [{ partition: 1, value: 'zombie-3' }] })),
      'AddPartitionsToTxn for a new partition'
    )
    assertFenced(
      await failureOf(
        zombieTxn.sendOffsets({
          consumerGroupId: uniqueTopic('zombie-group'),
          topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }],
        })
      ),
      'AddOffsetsToTxn'
    )
    assertFenced(await failureOf(zombieTxn.commit()), 'EndTxn(commit)')

    await freshTxn.send({ topic, messages: [{ partition: 0, value: 'fresh-1' }] })
    await freshTxn.commit()

    // A fenced producer whose first call after fencing is commit.
    const zombie2 = await transactionalProducer(transactionalId)
    const zombie2Txn = await zombie2.transaction()
    await zombie2Txn.send({ topic, messages: [{ partition: 1, value: 'zombie-4' }] })
    const fresh2 = await transactionalProducer(transactionalId)
    const fresh2Txn = await withTimeout(fresh2.transaction(), 20_000, 'the fourth producer to initialize')
    assertFenced(await failureOf(zombie2Txn.commit()), 'EndTxn(commit) as the first call after fencing')
    await fresh2Txn.send({ topic, messages: [{ partition: 1, value: 'fresh-2' }] })
    await fresh2Txn.commit()

    // Partition 0: zombie-1 @0 (aborted by the fencing), abort marker @1, fresh-1 @2, commit
    // marker @3, end @4. Partition 1: zombie-4 @0, abort marker @1, fresh-2 @2, marker @3, end @4.
    await waitForMarkers(topic, { 0: 4, 1: 4 })
    await writeSentinels(topic, [0, 1])
    assert.deepEqual(
      await readToSentinels(topic, [0, 1], { readUncommitted: false }),
      {
        0: [
          { offset: 2, value: 'fresh-1' },
          { offset: 4, value: 'end' },
        ],
        1: [
          { offset: 2, value: 'fresh-2' },
          { offset: 4, value: 'end' },
        ],
      },
      'read_committed: only the fresh producers\u2019 records'
    )
    assert.deepEqual(
      await readToSentinels(topic, [0, 1], { readUncommitted: true }),
      {
        0: [
          { offset: 0, value: 'zombie-1' },
          { offset: 2, value: 'fresh-1' },
          { offset: 4, value: 'end' },
        ],
        1: [
          { offset: 0, value: 'zombie-4' },
          { offset: 2, value: 'fresh-2' },
          { offset: 4, value: 'end' },
        ],
      },
      'read_uncommitted: the zombies\u2019 appended records too, and nothing sent after fencing'
    )
  })
)
