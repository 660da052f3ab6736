'use strict'

// Promise helpers around kafka-node 5.0.0 (the client Node-RED's Kafka nodes are built on) for
// the `test/kafka-node*.test.js` files. The broker itself comes from `harness.js` (`useBroker`);
// every kafka-node object made here is registered with `ctx.track`, so `ctx.wrap` closes it after
// the test like the kafkajs clients.
//
// kafka-node speaks the old protocol: ApiVersions v0, Metadata v0-1, Produce v0-2 with message
// format v0/v1, Fetch v0-2, ListOffsets v0, OffsetCommit v0-2, OffsetFetch v0-1,
// GroupCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup v0, CreateTopics v0-1.

const kafka = require('kafka-node')
const { uniqueTopic, waitFor, withTimeout } = require('./harness')

const CLOSE_TIMEOUT_MS = 10_000

/** kafka-node sometimes calls back with strings or plain objects; make them Errors. */
function asError(err, what) {
  if (err instanceof Error) return err
  const text = typeof err === 'string' ? err : JSON.stringify(err)
  return new Error(`${what}: ${text}`)
}

/** Calls `fn(callback)` and resolves with the callback's result (bounded by `timeoutMs`). */
function callback(what, fn, timeoutMs = 10_000) {
  return withTimeout(
    new Promise((resolve, reject) => {
      fn((err, result) => (err ? reject(asError(err, what)) : resolve(result)))
    }),
    timeoutMs,
    what
  )
}

/** Resolves on `readyEvent` of `emitter`, rejects on its first 'error' (or after `timeoutMs`). */
function ready(emitter, what, { readyEvent = 'ready', timeoutMs = 10_000 } = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const onReady = () => {
        emitter.removeListener('error', onError)
        resolve(emitter)
      }
      const onError = err => {
        emitter.removeListener(readyEvent, onReady)
        reject(asError(err, what))
      }
      emitter.once(readyEvent, onReady)
      emitter.once('error', onError)
    }),
    timeoutMs,
    `${what} '${readyEvent}' event`
  )
}

/** Registers a close function with the harness context (called by `ctx.wrap`). */
function trackClose(ctx, what, close) {
  let closed = null
  const handle = {
    disconnect() {
      if (!closed) closed = withTimeout(new Promise(resolve => close(() => resolve())), CLOSE_TIMEOUT_MS, what)
      return closed
    },
  }
  ctx.track(handle)
  return handle
}

/**
 * A connected KafkaClient (after 'ready': ApiVersions and metadata loaded) against the test
 * file's broker. Options are passed to kafka-node's KafkaClient.
 */
async function connectClient(ctx, options = {}) {
  const client = new kafka.KafkaClient({
    kafkaHost: ctx.address,
    clientId: 'sluice-kafka-node-tests',
    connectTimeout: 3000,
    requestTimeout: 10_000,
    connectRetryOptions: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 1000, randomize: false },
    ...options,
  })
  // Later errors (e.g. from a closed broker socket) must not crash the test process.
  const errors = []
  client.on('error', err => errors.push(err))
  client.errors = errors
  trackClose(ctx, 'KafkaClient.close()', cb => client.close(cb))
  if (client.ready) return client
  await ready(client, 'KafkaClient')
  return client
}

/** `client.loadMetadataForTopics(topics)` as a promise: resolves with [brokers, { metadata, clusterMetadata }]. */
function loadMetadata(client, topics) {
  return callback(`loadMetadataForTopics(${JSON.stringify(topics)})`, cb => client.loadMetadataForTopics(topics, cb))
}

/** A ready Producer (or HighLevelProducer with `{ highLevel: true }`) on its own client. */
async function connectProducer(ctx, { highLevel = false, producerOptions = {}, clientOptions = {} } = {}) {
  const client = await connectClient(ctx, clientOptions)
  const Ctor = highLevel ? kafka.HighLevelProducer : kafka.Producer
  const producer = new Ctor(client, { requireAcks: 1, ackTimeoutMs: 5000, ...producerOptions })
  producer.errors = []
  // The client is already ready; kafka-node emits the producer's 'ready' on the next tick.
  if (!producer.ready) await ready(producer, highLevel ? 'HighLevelProducer' : 'Producer')
  producer.on('error', err => producer.errors.push(err))
  producer.client = client
  return producer
}

/** `producer.send(payloads)` as a promise: resolves with { topic: { partition: baseOffset } }. */
function send(producer, payloads) {
  return callback('producer.send()', cb => producer.send(payloads, cb))
}

/**
 * A kafka-node Consumer on explicit partitions (`payloads`: [{ topic, partition, offset }]) with
 * `fromOffset: true` and no commits. Messages are collected in `consumer.messages` as
 * { topic, partition, offset, key, value, timestamp }; errors in `consumer.errors`.
 */
async function startConsumer(ctx, payloads, { options = {}, clientOptions = {} } = {}) {
  const client = await connectClient(ctx, clientOptions)
  const consumer = new kafka.Consumer(client, payloads, {
    groupId: uniqueTopic('kafka-node-consumer'),
    autoCommit: false,
    fromOffset: true,
    fetchMaxWaitMs: 100,
    encoding: 'utf8',
    keyEncoding: 'utf8',
    ...options,
  })
  consumer.messages = []
  consumer.errors = []
  consumer.fetches = 0
  consumer.on('message', m => consumer.messages.push(messageOf(m)))
  consumer.on('error', err => consumer.errors.push(err))
  consumer.on('offsetOutOfRange', err => consumer.errors.push(asError(err, 'offsetOutOfRange')))
  consumer.on('done', () => {
    consumer.fetches += 1
  })
  trackClose(ctx, 'Consumer.close()', cb => consumer.close(false, cb))
  return consumer
}

/** The fields the tests compare, in one stable shape. */
function messageOf(m) {
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    key: m.key,
    value: m.value,
    timestamp: m.timestamp instanceof Date ? m.timestamp.getTime() : null,
  }
}

/**
 * Waits until `consumer.messages` has `count` messages, then waits for `settleFetches` more
 * completed fetches to prove that nothing else arrives; fails early on a consumer error.
 */
async function collect(consumer, count, { timeoutMs = 12_000, settleFetches = 2, what = 'messages' } = {}) {
  const describe = () =>
    `${what}: ${consumer.messages.length} of ${count}` +
    (consumer.errors.length ? `; errors: ${consumer.errors.map(e => e.message || e).join('; ')}` : '')
  await waitFor(
    () => {
      if (consumer.errors.length > 0) throw new Error(describe())
      return consumer.messages.length >= count
    },
    { timeoutMs, describe }
  ).catch(e => {
    throw new Error(consumer.errors.length ? describe() : e.message)
  })
  const fetches = consumer.fetches
  await waitFor(() => consumer.fetches >= fetches + settleFetches, {
    timeoutMs: 10_000,
    describe: () => `${settleFetches} more fetches after the last expected message`,
  })
  return consumer.messages.slice()
}

/**
 * A kafka-node ConsumerGroup (the group consumer: JoinGroup/SyncGroup/Heartbeat v0) with
 * `protocol: ['roundrobin']`, `fromOffset: 'earliest'` and manual commits by default. Collects
 * messages in `group.messages` and errors in `group.errors`; `group.rebalances` counts completed
 * joins. Resolves after the first 'connect' (joined and assigned).
 */
async function startConsumerGroup(ctx, topics, options = {}) {
  const group = new kafka.ConsumerGroup(
    {
      kafkaHost: ctx.address,
      id: uniqueTopic('kafka-node-member'),
      groupId: uniqueTopic('kafka-node-group'),
      protocol: ['roundrobin'],
      fromOffset: 'earliest',
      autoCommit: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 300,
      fetchMaxWaitMs: 100,
      encoding: 'utf8',
      keyEncoding: 'utf8',
      connectTimeout: 3000,
      requestTimeout: 10_000,
      retries: 6,
      retryFactor: 1.8,
      retryMinTimeout: 200,
      ...options,
    },
    topics
  )
  group.messages = []
  group.errors = []
  group.rebalances = 0
  group.on('message', m => group.messages.push(messageOf(m)))
  group.on('error', err => group.errors.push(err))
  group.on('offsetOutOfRange', err => group.errors.push(asError(err, 'offsetOutOfRange')))
  group.on('rebalanced', () => {
    group.rebalances += 1
  })
  trackClose(ctx, 'ConsumerGroup.close()', cb => {
    if (group.closed) return cb()
    group.close(false, cb)
  })
  const describe = () =>
    `ConsumerGroup ${group.options.id} to join ${group.options.groupId}` +
    (group.errors.length ? `; errors: ${group.errors.map(e => e.message || e).join('; ')}` : '')
  await waitFor(
    () => {
      if (group.errors.length > 0) throw new Error(describe())
      return group.rebalances > 0
    },
    { timeoutMs: 12_000, describe }
  ).catch(e => {
    throw new Error(group.errors.length ? describe() : e.message)
  })
  return group
}

/** The partitions a ConsumerGroup member owns now, as sorted 'topic:partition' strings. */
function assignmentOf(group) {
  if (!group.ready || group.rebalancing || group.connecting) return null
  return group.topicPayloads.map(p => `${p.topic}:${p.partition}`).sort()
}

/** A JSON copy (kafka-node returns class instances such as PartitionMetadata; strict deepEqual compares prototypes). */
function plain(value) {
  return JSON.parse(JSON.stringify(value))
}

/** Sorts messages by partition, then offset. */
function byPartitionOffset(messages) {
  return messages.slice().sort((a, b) => a.partition - b.partition || a.offset - b.offset)
}

module.exports = {
  kafka,
  asError,
  assignmentOf,
  byPartitionOffset,
  callback,
  collect,
  connectClient,
  connectProducer,
  loadMetadata,
  messageOf,
  plain,
  ready,
  send,
  startConsumer,
  startConsumerGroup,
  trackClose,
}
