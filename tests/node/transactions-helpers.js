'use strict'

// Helpers for the idempotence / transaction tests (test/transactions*.test.js), built on
// harness.js:
//   - FaultProxy: a TCP proxy between kafkajs and the broker that understands Kafka framing,
//     records every Produce request/response it relays and can drop a connection right after
//     the broker answered a Produce request, before the answer reaches the client.
//   - useProxiedBroker(): a broker for the test file that advertises the proxy's address, so
//     every connection a client opens after bootstrap goes through the proxy.
//   - listEndOffsets(): ListOffsets(latest) with an explicit isolation level.

const net = require('node:net')
const { before, after } = require('node:test')

const { useBroker, waitFor } = require('./harness')

const PRODUCE = 0

/** Reads length-prefixed Kafka frames from a stream of chunks; calls onFrame(body) for each. */
function frameReader(onFrame) {
  let buffered = Buffer.alloc(0)
  return chunk => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
    while (buffered.length >= 4) {
      const size = buffered.readInt32BE(0)
      if (buffered.length < 4 + size) break
      const body = buffered.subarray(4, 4 + size)
      buffered = buffered.subarray(4 + size)
      onFrame(body)
    }
  }
}

function frame(body) {
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length, 0)
  return Buffer.concat([size, body])
}

/** A cursor over a big-endian buffer, enough for the non-flexible Produce versions. */
class Reader {
  constructor(buf, pos = 0) {
    this.buf = buf
    this.pos = pos
  }
  int8() {
    const v = this.buf.readInt8(this.pos)
    this.pos += 1
    return v
  }
  int16() {
    const v = this.buf.readInt16BE(this.pos)
    this.pos += 2
    return v
  }
  int32() {
    const v = this.buf.readInt32BE(this.pos)
    this.pos += 4
    return v
  }
  int64() {
    const v = this.buf.readBigInt64BE(this.pos)
    this.pos += 8
    return v
  }
  nullableString() {
    const len = this.int16()
    if (len < 0) return null
    const v = this.buf.toString('utf8', this.pos, this.pos + len)
    this.pos += len
    return v
  }
  bytes() {
    const len = this.int32()
    if (len < 0) return null
    const v = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return v
  }
  array(item) {
    const n = this.int32()
    const out = []
    for (let i = 0; i < n; i++) out.push(item())
    return out
  }
}

/**
 * Parses a Produce request (v3..v8, request header v1) into
 * { apiVersion, correlationId, transactionalId, acks, partitions: [{ topic, partition,
 *   producerId, producerEpoch, baseSequence, recordCount, transactional }] }
 * (the first record batch of each partition; kafkajs sends one per partition).
 */
function parseProduceRequest(body) {
  const r = new Reader(body)
  const apiKey = r.int16()
  const apiVersion = r.int16()
  const correlationId = r.int32()
  r.nullableString() // client id
  if (apiKey !== PRODUCE || apiVersion < 3 || apiVersion > 8) {
    return { apiVersion, correlationId, unparsed: true, partitions: [] }
  }
  const transactionalId = r.nullableString()
  const acks = r.int16()
  r.int32() // timeout
  const partitions = r
    .array(() => {
      const topic = r.nullableString()
      return r.array(() => {
        const partition = r.int32()
        const records = r.bytes()
        const batch = new Reader(records, 0)
        batch.pos = 21
        const attributes = batch.int16()
        batch.pos = 43
        const producerId = batch.int64()
        const producerEpoch = batch.int16()
        const baseSequence = batch.int32()
        const recordCount = batch.int32()
        return {
          topic,
          partition,
          producerId,
          producerEpoch,
          baseSequence,
          recordCount,
          transactional: (attributes & 0x10) !== 0,
        }
      })
    })
    .flat()
  return { apiVersion, correlationId, transactionalId, acks, partitions }
}

/**
 * Parses a Produce response (v3..v8, response header v0) into
 * { correlationId, partitions: [{ topic, partition, errorCode, baseOffset }] }.
 */
function parseProduceResponse(body, apiVersion) {
  const r = new Reader(body)
  const correlationId = r.int32()
  if (apiVersion < 3 || apiVersion > 8) return { correlationId, unparsed: true, partitions: [] }
  const partitions = r
    .array(() => {
      const topic = r.nullableString()
      return r.array(() => {
        const partition = r.int32()
        const errorCode = r.int16()
        const baseOffset = r.int64()
        r.int64() // log_append_time_ms
        if (apiVersion >= 5) r.int64() // log_start_offset
        if (apiVersion >= 8) {
          r.array(() => {
            r.int32()
            r.nullableString()
          })
          r.nullableString()
        }
        return { topic, partition, errorCode, baseOffset }
      })
    })
    .flat()
  return { correlationId, partitions }
}

/**
 * TCP proxy on 127.0.0.1 in front of one broker (`target()` returns the broker's port).
 * Every Produce request relayed is appended to `produces` as { ordinal, request, response, dropped } (response filled in when the broker
 * answers). `dropPolicy(request, ordinal)` decides, when the request goes out, whether the
 * broker's answer to it is withheld: then the proxy closes both sides of that connection as
 * soon as the answer arrives from the broker, so the client sees a dropped connection for a
 * request the broker has fully processed.
 */
class FaultProxy {
  constructor(port = 0) {
    this.port = port
    this.target = null
    this.dropPolicy = null
    this.produces = []
    this.connections = new Set()
    this.server = net.createServer(client => this._accept(client))
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', () => {
        this.port = this.server.address().port
        resolve(this)
      })
    })
  }

  get address() {
    return `127.0.0.1:${this.port}`
  }

  get dropped() {
    return this.produces.filter(p => p.dropped)
  }

  _accept(client) {
    const upstream = net.connect({ host: '127.0.0.1', port: this.target() })
    const conn = { client, upstream, pending: new Map(), closed: false }
    this.connections.add(conn)
    const close = () => {
      if (conn.closed) return
      conn.closed = true
      this.connections.delete(conn)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close)
    upstream.on('error', close)
    client.on('close', close)
    upstream.on('close', close)

    client.on(
      'data',
      frameReader(body => {
        if (conn.closed) return
        const apiKey = body.readInt16BE(0)
        const apiVersion = body.readInt16BE(2)
        const correlationId = body.readInt32BE(4)
        const entry = { apiKey, apiVersion }
        if (apiKey === PRODUCE) {
          const request = parseProduceRequest(body)
          const produce = {
            ordinal: this.produces.length,
            request,
            response: null,
            dropped: false,
          }
          produce.drop = !!(this.dropPolicy && this.dropPolicy(request, produce.ordinal))
          this.produces.push(produce)
          entry.produce = produce
        }
        // acks=0 Produce requests get no answer; nothing to match.
        if (!(apiKey === PRODUCE && entry.produce.request.acks === 0)) {
          conn.pending.set(correlationId, entry)
        }
        upstream.write(frame(body))
      })
    )

    upstream.on(
      'data',
      frameReader(body => {
        if (conn.closed) return
        const correlationId = body.readInt32BE(0)
        const entry = conn.pending.get(correlationId)
        conn.pending.delete(correlationId)
        if (entry && entry.produce) {
          entry.produce.response = parseProduceResponse(body, entry.apiVersion)
          if (entry.produce.drop) {
            entry.produce.dropped = true
            close()
            return
          }
        }
        client.write(frame(body))
      })
    )
  }

  async close() {
    for (const conn of this.connections) {
      conn.client.destroy()
      conn.upstream.destroy()
    }
    await new Promise(resolve => this.server.close(() => resolve()))
  }
}

/**
 * Like useBroker(), but the broker advertises a FaultProxy in front of it
 * (`--advertise 127.0.0.1:<proxy port>`). Returns { ctx, proxy }; pass
 * { brokers: [proxy.address] } as kafkaConfig to bootstrap through the proxy too.
 */
function useProxiedBroker({ args = [] } = {}) {
  // node 20 runs a file's top-level `before` hooks concurrently, so the broker's flags must be
  // known before any hook runs: take a port number synchronously (listen(0) binds at once
  // without a host; closed again before the event loop turns) and listen on it in a hook.
  const probe = net.createServer()
  probe.listen(0)
  const port = probe.address().port
  probe.close()
  const proxy = new FaultProxy(port)
  const ctx = useBroker({ args: [...args, '--advertise', proxy.address] })
  proxy.target = () => ctx.broker.port
  before(async () => {
    await proxy.listen()
  })
  after(async () => {
    await proxy.close()
  })
  return { ctx, proxy }
}

const READ_UNCOMMITTED = 0
const READ_COMMITTED = 1

/**
 * ListOffsets(latest) for every partition of `topic` with the given isolation level
 * (READ_COMMITTED answers the last stable offset, READ_UNCOMMITTED the high watermark).
 * Returns { partition: Number(offset) }.
 */
async function listEndOffsets(ctx, topic, isolationLevel) {
  const kafka = ctx.kafka()
  const createCluster = Object.getOwnPropertySymbols(kafka).find(
    s => s.description === 'private:Kafka:createCluster'
  )
  if (!createCluster) throw new Error('kafkajs internals changed: no createCluster symbol')
  const cluster = kafka[createCluster]({ isolationLevel })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    await cluster.refreshMetadata()
    const partitions = cluster.findTopicPartitionMetadata(topic).map(p => ({ partition: p.partitionId }))
    const [result] = await cluster.fetchTopicsOffset([{ topic, partitions, fromBeginning: false }])
    return Object.fromEntries(result.partitions.map(p => [p.partition, Number(p.offset)]))
  } finally {
    await cluster.disconnect()
  }
}

/** Groups consumed records by partition: { partition: [values in offset order] }. */
function byPartition(messages) {
  const out = {}
  for (const m of messages) {
    ;(out[m.partition] = out[m.partition] || []).push(m)
  }
  for (const list of Object.values(out)) list.sort((a, b) => Number(a.offset) - Number(b.offset))
  return out
}

/** Waits until `fn` (sync) is truthy; shorthand for waitFor with a description. */
function until(fn, describe, timeoutMs = 15_000) {
  return waitFor(fn, { timeoutMs, intervalMs: 25, describe })
}

module.exports = {
  FaultProxy,
  READ_COMMITTED,
  READ_UNCOMMITTED,
  byPartition,
  listEndOffsets,
  parseProduceRequest,
  parseProduceResponse,
  until,
  useProxiedBroker,
}
