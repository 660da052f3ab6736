'use strict'

// Consume-transform-produce with kafkajs transactions (issue 5, "Done means"): a consumer in
// group G reads an input topic in batches; for each chunk it writes transformed records to an
// output topic and sends G's offsets in the same transaction (transaction.sendOffsets), then
// commits. Three sessions: the first stops part-way (disconnect) and the second resumes where
// the first committed; the second aborts one chunk on purpose and stops, and the third resumes
// at the start of the aborted chunk and finishes. Exactly-once: the read_committed output
// holds every input record transformed exactly once, the aborted chunk's output is invisible,
// and G's committed offsets end at the input's end offsets.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { useBroker, uniqueTopic, withTimeout } = require('../harness')
const { GROUP_CONSUMER_DEFAULTS, range, waitForCommitted } = require('../groups-helpers')
const { READ_COMMITTED, READ_UNCOMMITTED, byPartition, listEndOffsets, until } = require('../transactions-helpers')

const ctx = useBroker()

const PARTITIONS = 2
const N = 90 // input records, 45 per partition
const CHUNK = 5 // input records per transaction

const transform = value => `processed(${value})`

async function createTopic(admin, topic, numPartitions) {
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }), true)
}

/**
 * One processing session: a consumer in `groupId` (autoCommit off) and a transactional
 * producer with `transactionalId`. Each batch kafkajs delivers is cut into chunks of CHUNK
 * records; each chunk is one transaction (send transformed records to the same partition of
 * `output`, sendOffsets for the input partition, commit). After `commitChunks` committed chunks
 * the session stops; with `abortNext` it first processes one more chunk and aborts it.
 * `afterInit()` runs once the producer is initialized, before the consumer starts.
 * Resolves once the session has connected; `session.stopped` turns true when it stops.
 */
async function startSession({
  name,
  groupId,
  transactionalId,
  input,
  output,
  commitChunks = Infinity,
  abortNext = false,
  afterInit = async () => {},
}) {
  const producer = await ctx.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
  // kafkajs initializes the transactional id on the first transaction(): do it now, with an
  // empty transaction (ended locally, nothing was added). InitProducerId also waits until the
  // previous session's last transaction is complete (markers written).
  const init = await withTimeout(producer.transaction(), 20_000, `${name}: InitProducerId`)
  await init.abort()
  await afterInit()

  const consumer = ctx.track(
    ctx.kafka().consumer({ groupId, ...GROUP_CONSUMER_DEFAULTS, readUncommitted: false })
  )
  const session = {
    name,
    producer,
    consumer,
    committed: [], // [{ partition, offsets: [n], values: [string] }]
    aborted: null,
    firstOffsets: {}, // partition -> first input offset this session saw
    crashes: [],
    stopped: false,
    describe() {
      return `${name}: committed ${this.committed.length} chunks (${this.committed
        .map(c => `${c.partition}:${c.offsets[0]}-${c.offsets[c.offsets.length - 1]}`)
        .join(' ')}) aborted=${JSON.stringify(this.aborted && this.aborted.offsets)} crashes=${this.crashes
        .map(e => e.message)
        .join('; ')}`
    },
  }
  consumer.on(consumer.events.CRASH, event => session.crashes.push(event.payload.error))
  await consumer.connect()
  await consumer.subscribe({ topic: input, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const { partition } = batch
      for (let i = 0; i < batch.messages.length; i += CHUNK) {
        if (session.stopped || !isRunning() || isStale()) return
        const chunk = batch.messages.slice(i, i + CHUNK)
        if (!(partition in session.firstOffsets)) session.firstOffsets[partition] = Number(chunk[0].offset)
        const abort = session.committed.length >= commitChunks
        if (abort && !abortNext) {
          session.stopped = true
          return
        }
        const offsets = chunk.map(m => Number(m.offset))
        const values = chunk.map(m => m.value.toString())
        const txn = await producer.transaction()
        await txn.send({
          topic: output,
          messages: chunk.map(m => ({ partition, key: m.key, value: transform(m.value.toString()) })),
        })
        await txn.sendOffsets({
          consumerGroupId: groupId,
          topics: [{ topic: input, partitions: [{ partition, offset: String(offsets[offsets.length - 1] + 1) }] }],
        })
        if (abort) {
          await txn.abort()
          session.aborted = { partition, offsets, values }
          session.stopped = true
          return
        }
        await txn.commit()
        session.committed.push({ partition, offsets, values })
        resolveOffset(chunk[chunk.length - 1].offset)
        await heartbeat()
      }
    },
  })
  return session
}

async function stopSession(session) {
  ctx.clients.delete(session.consumer)
  await withTimeout(session.consumer.disconnect(), 15_000, `${session.name}: consumer.disconnect()`)
  ctx.clients.delete(session.producer)
  await withTimeout(session.producer.disconnect(), 15_000, `${session.name}: producer.disconnect()`)
  assert.deepEqual(session.crashes, [], session.describe())
}

/** { partition: next offset } after the committed chunks of `sessions` (absent: nothing committed). */
function committedPositions(sessions) {
  const positions = {}
  for (const s of sessions) for (const c of s.committed) positions[c.partition] = c.offsets[c.offsets.length - 1] + 1
  return positions
}

/** Consumes `topic` until the sentinel 'end' arrived from every partition. */
async function readToSentinels(topic, { readUncommitted }) {
  const messages = await ctx.consume({
    topic,
    until: msgs => range(0, PARTITIONS).every(p => msgs.some(m => m.partition === p && m.value.toString() === 'end')),
    consumerConfig: { readUncommitted },
  })
  const grouped = byPartition(messages)
  return Object.fromEntries(
    Object.entries(grouped).map(([p, list]) => [p, list.map(m => m.value.toString()).filter(v => v !== 'end')])
  )
}

test(
  'consume-transform-produce with sendOffsets: exactly-once output across consumer restarts and an aborted chunk',
  ctx.wrap(async t => {
    const input = uniqueTopic('eos-in')
    const output = uniqueTopic('eos-out')
    const groupId = uniqueTopic('eos-group')
    const transactionalId = uniqueTopic('eos-tid')
    const admin = await ctx.admin()
    await createTopic(admin, input, PARTITIONS)
    await createTopic(admin, output, PARTITIONS)

    const inputValues = {} // partition -> values in offset order
    const plain = await ctx.producer()
    await plain.send({
      topic: input,
      acks: -1,
      messages: range(0, N).map(i => ({ partition: i % PARTITIONS, key: `k-${i}`, value: `in-${i}` })),
    })
    for (const i of range(0, N)) (inputValues[i % PARTITIONS] = inputValues[i % PARTITIONS] || []).push(`in-${i}`)
    const inputEnd = await listEndOffsets(ctx, input, READ_UNCOMMITTED)
    assert.deepEqual(inputEnd, { 0: N / PARTITIONS, 1: N / PARTITIONS })
    const common = { groupId, transactionalId, input, output }

    // Session 1: commits 4 chunks, then stops (disconnects) part-way through the input.
    const s1 = await startSession({ name: 's1', commitChunks: 4, ...common })
    await until(() => s1.stopped || s1.crashes.length > 0, () => s1.describe(), 20_000)
    await stopSession(s1)
    assert.equal(s1.committed.length, 4, s1.describe())
    assert.equal(s1.aborted, null)
    await waitForCommitted(admin, { groupId, topic: input, expected: committedPositions([s1]) })

    // Session 2 resumes where s1 committed, commits 2 chunks, then aborts the next one and stops.
    const s2 = await startSession({ name: 's2', commitChunks: 2, abortNext: true, ...common })
    await until(() => s2.stopped || s2.crashes.length > 0, () => s2.describe(), 20_000)
    await stopSession(s2)
    assert.equal(s2.committed.length, 2, s2.describe())
    assert.ok(s2.aborted, s2.describe())
    const s1Positions = committedPositions([s1])
    for (const [p, first] of Object.entries(s2.firstOffsets)) {
      assert.equal(first, s1Positions[p] ?? 0, `s2 resumed partition ${p} at s1's committed offset`)
    }
    const aborted = s2.aborted
    assert.equal(aborted.offsets.length, CHUNK)

    // Session 3 starts with an InitProducerId for the same transactional id, which completes
    // only after s2's aborted transaction is fully written. G's offsets are then exactly those
    // of the committed chunks: the aborted chunk's sendOffsets did not take effect.
    const beforeS3 = committedPositions([s1, s2])
    assert.equal(beforeS3[aborted.partition] ?? 0, aborted.offsets[0], 'the aborted chunk was not committed')
    const s3 = await startSession({
      name: 's3',
      ...common,
      afterInit: async () => {
        const [fetched] = await admin.fetchOffsets({ groupId, topics: [input] })
        assert.deepEqual(
          Object.fromEntries(fetched.partitions.map(p => [p.partition, Number(p.offset)])),
          Object.fromEntries(range(0, PARTITIONS).map(p => [p, beforeS3[p] ?? -1])),
          "G's committed offsets after the abort (-1: none)"
        )
      },
    })

    // s3 processes the rest, re-processing the aborted chunk first on its partition.
    await waitForCommitted(admin, { groupId, topic: input, expected: inputEnd, timeoutMs: 30_000 })
    await until(
      () => committedPositions([s1, s2, s3])[0] === inputEnd[0] && committedPositions([s1, s2, s3])[1] === inputEnd[1],
      () => s3.describe()
    )
    await stopSession(s3)
    for (const s of [s1, s2, s3]) t.diagnostic(s.describe())
    assert.equal(s3.aborted, null)
    assert.equal(s3.firstOffsets[aborted.partition], aborted.offsets[0], 's3 re-processed the aborted chunk')
    const redo = s3.committed.find(c => c.partition === aborted.partition)
    assert.deepEqual(redo.offsets, aborted.offsets, 's3 re-processed exactly the aborted records first')

    // Every input record was in exactly one committed transaction.
    const processed = [s1, s2, s3].flatMap(s => s.committed.flatMap(c => c.offsets.map(o => `${c.partition}:${o}`)))
    assert.equal(processed.length, N)
    assert.deepEqual(
      [...processed].sort(),
      range(0, PARTITIONS)
        .flatMap(p => range(0, inputEnd[p]).map(o => `${p}:${o}`))
        .sort()
    )

    // The output log: per partition, the records of every transaction (committed and aborted)
    // plus one marker per transaction, nothing else.
    const expectedOutputEnd = {}
    for (const c of [...[s1, s2, s3].flatMap(s => s.committed), aborted]) {
      expectedOutputEnd[c.partition] = (expectedOutputEnd[c.partition] || 0) + c.offsets.length + 1
    }
    let lastEnds
    await until(
      async () => {
        lastEnds = [
          await listEndOffsets(ctx, output, READ_COMMITTED),
          await listEndOffsets(ctx, output, READ_UNCOMMITTED),
        ]
        return lastEnds.every(e => JSON.stringify(e) === JSON.stringify(expectedOutputEnd))
      },
      () => `output LSO and high watermark ${JSON.stringify(lastEnds)} to be ${JSON.stringify(expectedOutputEnd)}`
    )

    const sentinel = await ctx.producer()
    await sentinel.send({
      topic: output,
      acks: -1,
      messages: range(0, PARTITIONS).map(partition => ({ partition, value: 'end' })),
    })

    // read_committed: each input record transformed exactly once, in input order per partition.
    const committedOutput = await readToSentinels(output, { readUncommitted: false })
    const expectedOutput = Object.fromEntries(range(0, PARTITIONS).map(p => [p, inputValues[p].map(transform)]))
    assert.deepEqual(committedOutput, expectedOutput)
    assert.equal(Object.values(committedOutput).flat().length, N)

    // read_uncommitted: the aborted chunk's output is in the log too (then again, committed).
    const uncommittedOutput = await readToSentinels(output, { readUncommitted: true })
    const withAborted = { ...expectedOutput }
    const p = aborted.partition
    const at = inputValues[p].indexOf(aborted.values[0])
    withAborted[p] = [...inputValues[p].slice(0, at), ...aborted.values, ...inputValues[p].slice(at)].map(transform)
    assert.deepEqual(uncommittedOutput, withAborted)

    // G ends at the input's end offsets.
    const [final] = await admin.fetchOffsets({ groupId, topics: [input] })
    assert.deepEqual(Object.fromEntries(final.partitions.map(q => [q.partition, Number(q.offset)])), inputEnd)
  })
)
