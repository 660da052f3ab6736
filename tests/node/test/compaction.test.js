'use strict'

// Log compaction as a kafkajs user sees it: 100,000 updates to 100 keys on a compacted topic
// with small segments shrink to a few hundred records, a consumer from the beginning gets the
// latest value of every key at the offset it was written to, and tombstoned keys vanish once
// delete.retention.ms has passed.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const { SLUICE_BIN, useBroker, uniqueTopic, waitFor } = require('../harness')

// The cleaner looks for work every 100 ms instead of Kafka's 15 s.
const ctx = useBroker({ args: ['--log-cleaner-backoff-ms', '100'] })

/** The dirty ratio `sluice topic describe` reports for partition 0 (null: not compacted). */
function dirtyRatio(topic) {
  const out = execFileSync(
    SLUICE_BIN,
    ['topic', 'describe', topic, '--json', '--brokers', ctx.address],
    { encoding: 'utf8' }
  )
  return JSON.parse(out).partitions[0].dirty_ratio
}

async function waitCleaned(topic) {
  await waitFor(() => dirtyRatio(topic) === 0, {
    timeoutMs: 90_000,
    intervalMs: 250,
    describe: () => `${topic} to be cleaned (dirty ratio ${dirtyRatio(topic)})`,
  })
}

async function createCompacted(topic, extra = []) {
  const admin = await ctx.admin()
  assert.equal(
    await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [
            { name: 'cleanup.policy', value: 'compact' },
            { name: 'segment.bytes', value: '8192' },
            { name: 'min.cleanable.dirty.ratio', value: '0.01' },
            ...extra,
          ],
        },
      ],
    }),
    true
  )
}

/** `updates` records cycling over `keys` keys `<prefix>-<i % keys>`, value `<first + i>`. */
async function produceUpdates(topic, { prefix = 'key', keys, first = 0, updates }) {
  const producer = await ctx.producer({ idempotent: true, maxInFlightRequests: 1 })
  // Batches of 200 records (~4 KB): two fill the 8 KiB active segment.
  const perSend = 200
  for (let start = 0; start < updates; start += perSend) {
    const messages = []
    for (let i = start; i < Math.min(start + perSend, updates); i++) {
      messages.push({ partition: 0, key: `${prefix}-${i % keys}`, value: String(first + i) })
    }
    await producer.send({ topic, messages })
  }
  await producer.disconnect()
}

/** Every record from the beginning up to the high watermark, as { offset, key, value }. */
async function readAll(topic) {
  const admin = await ctx.admin()
  const [{ high }] = await admin.fetchTopicOffsets(topic)
  const messages = await ctx.consume({
    topic,
    until: msgs => msgs.length > 0 && BigInt(msgs[msgs.length - 1].offset) === BigInt(high) - 1n,
    timeoutMs: 60_000,
  })
  const records = messages.map(m => ({
    offset: Number(m.offset),
    key: m.key.toString(),
    value: m.value === null ? null : m.value.toString(),
  }))
  for (let i = 1; i < records.length; i++) {
    assert.ok(records[i - 1].offset < records[i].offset, 'offsets increase')
  }
  return records
}

function latest(records) {
  const map = {}
  for (const r of records) map[r.key] = r.value
  return map
}

test(
  '100,000 updates to 100 keys shrink to the latest value of each key at its offset',
  { timeout: 300_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('compacted')
    await createCompacted(topic)
    await produceUpdates(topic, { keys: 100, updates: 100_000 })
    await waitCleaned(topic)
    const records = await readAll(topic)
    // One record per key in the cleaned part; the active segment (never cleaned) keeps at most
    // a few hundred.
    assert.ok(records.length <= 600, `${records.length} records left`)
    const expected = {}
    for (let i = 99_900; i < 100_000; i++) expected[`key-${i % 100}`] = String(i)
    assert.deepEqual(latest(records), expected)
    for (const r of records) assert.equal(r.value, String(r.offset), 'offsets never change')
  })
)

test(
  'tombstoned keys disappear once delete.retention.ms has passed',
  { timeout: 300_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('tombstones')
    await createCompacted(topic, [{ name: 'delete.retention.ms', value: '2000' }])
    await produceUpdates(topic, { keys: 20, updates: 2000 })
    const producer = await ctx.producer()
    const doomed = ['key-0', 'key-1', 'key-2']
    await producer.send({
      topic,
      messages: doomed.map(key => ({ partition: 0, key, value: null })),
    })
    await produceUpdates(topic, { prefix: 'other', keys: 10, first: 10_000, updates: 2000 })
    await waitCleaned(topic)
    const kept = latest(await readAll(topic))
    for (const key of doomed) assert.equal(kept[key], null, `${key}'s tombstone stays for now`)

    await new Promise(resolve => setTimeout(resolve, 2100))
    await produceUpdates(topic, { prefix: 'other', keys: 10, first: 20_000, updates: 2000 })
    const after = await waitFor(
      async () => {
        const records = await readAll(topic)
        return records.some(r => doomed.includes(r.key)) ? null : records
      },
      { timeoutMs: 90_000, intervalMs: 500, describe: () => 'the tombstones to go' }
    )
    const expected = {}
    for (let k = 3; k < 20; k++) expected[`key-${k}`] = String(1980 + k)
    for (let i = 1990; i < 2000; i++) expected[`other-${i % 10}`] = String(20_000 + i)
    assert.deepEqual(latest(after), expected)
  })
)
