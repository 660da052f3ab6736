'use strict'

// Message shapes and produce options: headers, null keys, empty and null values, a large
// message, a 1,000-message batch, GZIP, and acks 1 / -1 / 0.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { CompressionTypes, CompressionCodecs } = require('kafkajs')
const { useBroker, uniqueTopic, protocolErrorOf } = require('../harness')

const ctx = useBroker()

// Count what kafkajs' built-in GZIP codec does, to see that the batches really travel
// compressed both ways (Kafka stores the producer's batches as they are with the default
// compression.type=producer, and fetches return them still compressed).
const gzipCalls = { compress: 0, decompress: 0 }
const builtinGzip = CompressionCodecs[CompressionTypes.GZIP]
CompressionCodecs[CompressionTypes.GZIP] = () => {
  const codec = builtinGzip()
  return {
    async compress(encoder) {
      gzipCalls.compress += 1
      return codec.compress(encoder)
    },
    async decompress(buffer) {
      gzipCalls.decompress += 1
      return codec.decompress(buffer)
    },
  }
}

async function createTopic(topic, numPartitions = 1) {
  const admin = await ctx.admin()
  assert.equal(
    await admin.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] }),
    true
  )
  return admin
}

test(
  'headers: several per record, string and Buffer values, repeated keys',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('headers')
    await createTopic(topic)
    const binary = Buffer.from([0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff])
    const producer = await ctx.producer()
    await producer.send({
      topic,
      messages: [
        {
          key: 'k1',
          value: 'with headers',
          headers: {
            'correlation-id': '2bfb68bb-893a-423b-a7fa-7b568cad5b67',
            'system-id': 'my-system',
            binary,
            empty: '',
            repeated: ['first', 'second'],
          },
        },
        { key: 'k2', value: 'without headers' },
      ],
    })

    const [m1, m2] = await ctx.consume({ topic, count: 2 })
    assert.equal(m1.offset, '0')
    assert.equal(m1.key.toString(), 'k1')
    assert.equal(m1.value.toString(), 'with headers')
    assert.deepEqual(Object.keys(m1.headers).sort(), [
      'binary',
      'correlation-id',
      'empty',
      'repeated',
      'system-id',
    ])
    assert.equal(m1.headers['correlation-id'].toString(), '2bfb68bb-893a-423b-a7fa-7b568cad5b67')
    assert.equal(m1.headers['system-id'].toString(), 'my-system')
    assert.ok(Buffer.isBuffer(m1.headers.binary))
    assert.deepEqual(m1.headers.binary, binary)
    assert.equal(m1.headers.empty.length, 0)
    assert.deepEqual(
      m1.headers.repeated.map(v => v.toString()),
      ['first', 'second']
    )
    assert.equal(m2.offset, '1')
    assert.equal(m2.key.toString(), 'k2')
    assert.deepEqual(m2.headers, {})
  })
)

test(
  'null keys, empty values and null values (tombstones) round-trip',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('nulls')
    await createTopic(topic)
    const producer = await ctx.producer()
    await producer.send({
      topic,
      messages: [
        { value: 'no key' },
        { key: null, value: 'explicit null key' },
        { key: 'empty-value', value: '' },
        { key: 'null-value', value: null },
        { key: '', value: 'empty key' },
      ],
    })

    const got = await ctx.consume({ topic, count: 5 })
    assert.deepEqual(
      got.map(m => m.offset),
      ['0', '1', '2', '3', '4']
    )
    assert.equal(got[0].key, null)
    assert.equal(got[0].value.toString(), 'no key')
    assert.equal(got[1].key, null)
    assert.equal(got[1].value.toString(), 'explicit null key')
    assert.equal(got[2].key.toString(), 'empty-value')
    assert.ok(Buffer.isBuffer(got[2].value), 'empty value is an empty buffer, not null')
    assert.equal(got[2].value.length, 0)
    assert.equal(got[3].key.toString(), 'null-value')
    assert.equal(got[3].value, null)
    assert.ok(Buffer.isBuffer(got[4].key), 'empty key is an empty buffer, not null')
    assert.equal(got[4].key.length, 0)
    assert.equal(got[4].value.toString(), 'empty key')
  })
)

test(
  'a 900 KB message round-trips byte for byte',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('large')
    await createTopic(topic)
    const value = Buffer.alloc(900 * 1024)
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + (i >> 8)) & 0xff
    const producer = await ctx.producer()
    const [sent] = await producer.send({ topic, messages: [{ key: 'big', value }] })
    assert.equal(sent.errorCode, 0)
    assert.equal(sent.baseOffset, '0')

    const [m] = await ctx.consume({ topic, count: 1 })
    assert.equal(m.offset, '0')
    assert.equal(m.key.toString(), 'big')
    assert.equal(m.value.length, value.length)
    assert.ok(m.value.equals(value), 'large value differs')
  })
)

test(
  'a batch above max.message.bytes is MESSAGE_TOO_LARGE; a topic override lets it in',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('too-large')
    const admin = await createTopic(topic)
    const value = Buffer.alloc(1200 * 1024, 0x61) // > 1048588, the default max.message.bytes
    const producer = await ctx.producer()
    await assert.rejects(producer.send({ topic, messages: [{ value }] }), error => {
      const protocolError = protocolErrorOf(error)
      assert.ok(protocolError, `expected a Kafka protocol error, got ${error.name}: ${error.message}`)
      assert.equal(protocolError.type, 'MESSAGE_TOO_LARGE')
      assert.equal(protocolError.code, 10)
      return true
    })
    assert.deepEqual(await admin.fetchTopicOffsets(topic), [
      { partition: 0, offset: '0', high: '0', low: '0' },
    ])

    const roomy = uniqueTopic('roomy')
    assert.equal(
      await admin.createTopics({
        topics: [
          {
            topic: roomy,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: [{ name: 'max.message.bytes', value: '2000000' }],
          },
        ],
      }),
      true
    )
    const [sent] = await producer.send({ topic: roomy, messages: [{ key: 'k', value }] })
    assert.equal(sent.errorCode, 0)
    assert.equal(sent.baseOffset, '0')
    // The record is larger than kafkajs' 1 MiB maxBytesPerPartition: the broker must still
    // return the whole first batch (KIP-74).
    const [m] = await ctx.consume({ topic: roomy, count: 1 })
    assert.equal(m.offset, '0')
    assert.ok(m.value.equals(value), 'large value differs')
  })
)

test(
  'a 1,000-message batch gets offsets 0..999 in order',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('batch')
    await createTopic(topic)
    const producer = await ctx.producer()
    const messages = Array.from({ length: 1000 }, (_, i) => ({
      key: `key-${i}`,
      value: `value-${i}`,
    }))
    const [sent] = await producer.send({ topic, messages })
    assert.equal(sent.errorCode, 0)
    assert.equal(sent.baseOffset, '0')

    const got = await ctx.consume({ topic, count: 1000 })
    assert.equal(got.length, 1000)
    got.forEach((m, i) => {
      assert.equal(m.partition, 0)
      assert.equal(m.offset, String(i))
      assert.equal(m.key.toString(), `key-${i}`)
      assert.equal(m.value.toString(), `value-${i}`)
    })

    const admin = await ctx.admin()
    assert.deepEqual(await admin.fetchTopicOffsets(topic), [
      { partition: 0, offset: '1000', high: '1000', low: '0' },
    ])
  })
)

test(
  'GZIP-compressed batches round-trip',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('gzip')
    await createTopic(topic)
    const producer = await ctx.producer()
    const first = Array.from({ length: 100 }, (_, i) => ({
      key: `k${i}`,
      value: `compressible value ${i} `.repeat(20),
      headers: { n: String(i) },
    }))
    const second = [{ key: 'last', value: 'after the first batch' }]
    const [s1] = await producer.send({ topic, compression: CompressionTypes.GZIP, messages: first })
    assert.equal(s1.baseOffset, '0')
    const [s2] = await producer.send({ topic, compression: CompressionTypes.GZIP, messages: second })
    assert.equal(s2.baseOffset, '100')

    assert.equal(gzipCalls.compress, 2, 'the producer compressed two batches')

    const got = await ctx.consume({ topic, count: 101 })
    assert.equal(got.length, 101)
    assert.ok(
      gzipCalls.decompress >= 2,
      `the fetched batches were GZIP-compressed (decompressed ${gzipCalls.decompress} times)`
    )
    got.slice(0, 100).forEach((m, i) => {
      assert.equal(m.offset, String(i))
      assert.equal(m.key.toString(), `k${i}`)
      assert.equal(m.value.toString(), `compressible value ${i} `.repeat(20))
      assert.equal(m.headers.n.toString(), String(i))
    })
    assert.equal(got[100].offset, '100')
    assert.equal(got[100].key.toString(), 'last')
    assert.equal(got[100].value.toString(), 'after the first batch')
  })
)

test(
  'acks 1, -1 and 0: responses as Kafka sends them, every record stored in order',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    const topic = uniqueTopic('acks')
    await createTopic(topic)
    const producer = await ctx.producer()

    const r1 = await producer.send({ topic, acks: 1, messages: [{ value: 'acks=1' }] })
    assert.equal(r1.length, 1)
    assert.equal(r1[0].errorCode, 0)
    assert.equal(r1[0].baseOffset, '0')

    const rAll = await producer.send({ topic, acks: -1, messages: [{ value: 'acks=-1' }] })
    assert.equal(rAll.length, 1)
    assert.equal(rAll[0].errorCode, 0)
    assert.equal(rAll[0].baseOffset, '1')

    // acks=0: the broker sends no response, so kafkajs resolves with an empty list.
    const r0 = await producer.send({
      topic,
      acks: 0,
      messages: [{ value: 'acks=0 a' }, { value: 'acks=0 b' }],
    })
    assert.deepEqual(r0, [])

    // The connection is still in sync after a response-less request.
    const rAfter = await producer.send({ topic, acks: 1, messages: [{ value: 'after acks=0' }] })
    assert.equal(rAfter[0].errorCode, 0)
    assert.equal(rAfter[0].baseOffset, '4')

    const got = await ctx.consume({ topic, count: 5 })
    assert.deepEqual(
      got.map(m => [m.offset, m.value.toString()]),
      [
        ['0', 'acks=1'],
        ['1', 'acks=-1'],
        ['2', 'acks=0 a'],
        ['3', 'acks=0 b'],
        ['4', 'after acks=0'],
      ]
    )
  })
)
