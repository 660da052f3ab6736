'use strict'

// Idempotent kafkajs producer under injected retries (issue 5, "Done means"): a TCP proxy
// between kafkajs and the broker lets the broker process some Produce requests and then drops
// the connection before the answer reaches kafkajs, so kafkajs resends a batch the broker has
// already appended. The broker must recognise the retry by producer id / epoch / sequence,
// answer it with the original offset and not append it again.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { uniqueTopic, waitFor } = require('../harness')
const { byPartition, listEndOffsets, READ_UNCOMMITTED, READ_COMMITTED, useProxiedBroker } = require(
  '../transactions-helpers'
)

const { ctx, proxy } = useProxiedBroker()

const PARTITIONS = 3
const TOTAL = 1000
const PER_SEND = 50
// Retries are what this test is about: enough of them, quickly.
const RETRY = { initialRetryTime: 100, maxRetryTime: 500, retries: 10 }

async function createTopic(topic, numPartitions) {
  const admin = await ctx.admin({ brokers: [proxy.address] })
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }), true)
}

/** Offset of the first message of the send starting at message `start` in partition `p`. */
function firstOffset(start, p) {
  let i = start
  while (i % PARTITIONS !== p) i++
  return Math.floor(i / PARTITIONS)
}

function expectedPerPartition(prefix) {
  const expected = {}
  for (let i = 0; i < TOTAL; i++) (expected[i % PARTITIONS] = expected[i % PARTITIONS] || []).push(`${prefix}-${i}`)
  return expected
}

/**
 * Checks every dropped Produce: the broker had appended it (error 0), kafkajs resent the same
 * batches (same producer id, epoch, base sequence, record count) in a later request, and the
 * broker answered the resend with the original base offsets, without an error.
 */
function checkRetriedDuplicates(topic) {
  const produces = proxy.produces.filter(p => p.request.partitions.some(q => q.topic === topic))
  const dropped = produces.filter(p => p.dropped)
  assert.ok(dropped.length >= 3, `expected several dropped Produce answers, got ${dropped.length}`)
  for (const drop of dropped) {
    assert.ok(drop.response, 'the broker answered the dropped request')
    for (const part of drop.request.partitions) {
      const original = drop.response.partitions.find(q => q.topic === part.topic && q.partition === part.partition)
      assert.equal(original.errorCode, 0, `dropped request #${drop.ordinal} was appended`)
      const retry = produces.find(
        p =>
          p.ordinal > drop.ordinal &&
          p.request.partitions.some(
            q =>
              q.topic === part.topic &&
              q.partition === part.partition &&
              q.producerId === part.producerId &&
              q.producerEpoch === part.producerEpoch &&
              q.baseSequence === part.baseSequence
          )
      )
      assert.ok(retry, `kafkajs resent the batch of request #${drop.ordinal} partition ${part.partition}`)
      const resent = retry.request.partitions.find(q => q.partition === part.partition)
      assert.equal(resent.recordCount, part.recordCount)
      assert.ok(!retry.dropped, 'the retry was answered')
      const answer = retry.response.partitions.find(q => q.topic === part.topic && q.partition === part.partition)
      assert.deepEqual(
        { errorCode: answer.errorCode, baseOffset: answer.baseOffset },
        { errorCode: 0, baseOffset: original.baseOffset },
        `the retry of request #${drop.ordinal} (partition ${part.partition}, ` +
          `sequence ${part.baseSequence}) is answered with the original offset`
      )
    }
  }
  return dropped.length
}

test(
  'idempotent producer: 1,000 messages in batches to 3 partitions, each stored exactly once and in order (no faults)',
  ctx.wrap(async () => {
    const topic = uniqueTopic('idem-clean')
    await createTopic(topic, PARTITIONS)
    const producer = await ctx.producer(
      { idempotent: true, maxInFlightRequests: 1, retry: RETRY },
      { brokers: [proxy.address] }
    )
    for (let start = 0; start < TOTAL; start += PER_SEND) {
      const messages = []
      for (let i = start; i < start + PER_SEND; i++) {
        messages.push({ partition: i % PARTITIONS, key: `k-${i}`, value: `clean-${i}` })
      }
      const result = await producer.send({ topic, acks: -1, messages })
      // Offsets follow directly: message i is at offset floor(i / 3) of partition i % 3.
      assert.equal(result.length, PARTITIONS)
      for (const r of result) {
        assert.equal(r.errorCode, 0)
        assert.equal(r.baseOffset, String(firstOffset(start, r.partition)))
      }
    }
    // Each Produce carried one batch per partition with an increasing sequence.
    const sequences = {}
    for (const p of proxy.produces.filter(p => p.request.partitions.some(q => q.topic === topic))) {
      for (const q of p.request.partitions) {
        assert.ok(q.producerId >= 0n, 'idempotent batches carry a producer id')
        assert.equal(q.transactional, false)
        assert.equal(q.baseSequence, sequences[q.partition] || 0, `sequence of partition ${q.partition}`)
        sequences[q.partition] = (sequences[q.partition] || 0) + q.recordCount
      }
    }
    assert.deepEqual(sequences, { 0: 334, 1: 333, 2: 333 })

    const messages = await ctx.consume({ topic, count: TOTAL, kafkaConfig: { brokers: [proxy.address] } })
    const expected = expectedPerPartition('clean')
    const got = byPartition(messages)
    for (let p = 0; p < PARTITIONS; p++) {
      assert.deepEqual(got[p].map(m => m.value.toString()), expected[p], `partition ${p} in order`)
      assert.deepEqual(got[p].map(m => Number(m.offset)), expected[p].map((_, i) => i))
    }
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_UNCOMMITTED), { 0: 334, 1: 333, 2: 333 })
  })
)

test(
  'idempotent producer under injected retries: answers dropped after the append, no duplicates in the log',
  ctx.wrap(async () => {
    const topic = uniqueTopic('idem-retry')
    await createTopic(topic, PARTITIONS)
    const producer = await ctx.producer(
      { idempotent: true, maxInFlightRequests: 1, retry: RETRY },
      { brokers: [proxy.address] }
    )
    // Drop the answer to every third Produce to this topic (8 drops at most); the retry of a
    // dropped request is the next one and goes through.
    let seen = 0
    proxy.dropPolicy = request => {
      if (!request.partitions.some(p => p.topic === topic)) return false
      seen += 1
      return seen % 3 === 1 && proxy.dropped.length < 8
    }
    const results = []
    try {
      for (let start = 0; start < TOTAL; start += PER_SEND) {
        const messages = []
        for (let i = start; i < start + PER_SEND; i++) {
          messages.push({ partition: i % PARTITIONS, key: `k-${i}`, value: `retry-${i}` })
        }
        results.push(...(await producer.send({ topic, acks: -1, messages })))
      }
    } finally {
      proxy.dropPolicy = null
    }
    const drops = checkRetriedDuplicates(topic)
    // Requests 1, 4, 7, ... are dropped (each drop's retry is the next request): sends 1, 3,
    // 5, ..., 15 lose their first answer, 8 drops in all.
    assert.equal(drops, 8, 'answers dropped')

    // What kafkajs reported back: 20 sends x 3 partitions, base offsets as if nothing failed.
    assert.equal(results.length, (TOTAL / PER_SEND) * PARTITIONS)
    for (const r of results) assert.equal(r.errorCode, 0)
    for (let p = 0; p < PARTITIONS; p++) {
      const bases = results.filter(r => r.partition === p).map(r => Number(r.baseOffset))
      const firstOffsets = []
      for (let start = 0; start < TOTAL; start += PER_SEND) firstOffsets.push(firstOffset(start, p))
      assert.deepEqual(bases, firstOffsets, `base offsets reported for partition ${p}`)
    }

    // The log: exactly the 1,000 messages, each once, in send order per partition.
    const end = await listEndOffsets(ctx, topic, READ_UNCOMMITTED)
    assert.deepEqual(end, { 0: 334, 1: 333, 2: 333 }, 'log end offsets equal the message counts')
    assert.equal(Object.values(end).reduce((a, b) => a + b, 0), TOTAL)
    assert.deepEqual(await listEndOffsets(ctx, topic, READ_COMMITTED), end, 'no transaction: LSO = high watermark')

    const messages = await ctx.consume({ topic, count: TOTAL, kafkaConfig: { brokers: [proxy.address] } })
    assert.equal(new Set(messages.map(m => m.value.toString())).size, TOTAL, 'no duplicates')
    const expected = expectedPerPartition('retry')
    const got = byPartition(messages)
    for (let p = 0; p < PARTITIONS; p++) {
      assert.deepEqual(got[p].map(m => m.value.toString()), expected[p], `partition ${p}: each once, in order`)
      assert.deepEqual(got[p].map(m => Number(m.offset)), expected[p].map((_, i) => i), `partition ${p}: offsets 0..`)
    }
  })
)

test(
  'transactional producer under injected retries: committed transactions hold each message once, aborted ones none',
  ctx.wrap(async () => {
    const topic = uniqueTopic('txn-retry')
    await createTopic(topic, PARTITIONS)
    const producer = await ctx.producer(
      { transactionalId: uniqueTopic('tid'), idempotent: true, maxInFlightRequests: 1, retry: RETRY },
      { brokers: [proxy.address] }
    )
    let seen = 0
    proxy.dropPolicy = request => {
      if (!request.partitions.some(p => p.topic === topic)) return false
      seen += 1
      return seen % 2 === 1
    }
    // 6 transactions of 2 sends x 30 messages; transactions 2 and 5 are aborted.
    const expected = {}
    const endOffsets = { 0: 0, 1: 0, 2: 0 }
    try {
      for (let t = 0; t < 6; t++) {
        const abort = t === 2 || t === 5
        const txn = await producer.transaction()
        for (let s = 0; s < 2; s++) {
          const messages = []
          for (let j = 0; j < 30; j++) {
            const i = t * 60 + s * 30 + j
            messages.push({ partition: i % PARTITIONS, value: `txn-${i}` })
            endOffsets[i % PARTITIONS] += 1
            if (!abort) (expected[i % PARTITIONS] = expected[i % PARTITIONS] || []).push(`txn-${i}`)
          }
          await txn.send({ topic, messages })
        }
        if (abort) await txn.abort()
        else await txn.commit()
        for (let p = 0; p < PARTITIONS; p++) endOffsets[p] += 1 // the marker
      }
    } finally {
      proxy.dropPolicy = null
    }
    assert.equal(checkRetriedDuplicates(topic), 12, 'every other Produce answer dropped')
    for (const p of proxy.produces.filter(p => p.request.partitions.some(q => q.topic === topic))) {
      assert.ok(p.request.partitions.every(q => q.transactional), 'transactional batches')
    }

    // 6 transactions x (20 records + 1 marker) per partition: no record was appended twice.
    assert.deepEqual(endOffsets, { 0: 126, 1: 126, 2: 126 })
    let last
    await waitFor(
      async () => {
        last = [await listEndOffsets(ctx, topic, READ_COMMITTED), await listEndOffsets(ctx, topic, READ_UNCOMMITTED)]
        return last.every(e => JSON.stringify(e) === JSON.stringify(endOffsets))
      },
      { describe: () => `LSO and high watermark ${JSON.stringify(last)} to be ${JSON.stringify(endOffsets)}` }
    )

    const count = 4 * 60
    const messages = await ctx.consume({ topic, count, kafkaConfig: { brokers: [proxy.address] } })
    const got = byPartition(messages)
    for (let p = 0; p < PARTITIONS; p++) {
      assert.deepEqual(
        got[p].map(m => m.value.toString()),
        expected[p],
        `partition ${p}: committed records, each once, in order`
      )
    }
  })
)
