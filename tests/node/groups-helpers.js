'use strict'

// Helpers for the consumer-group tests (test/groups*.test.js), built on harness.js.

const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const { Broker, FAST_RETRY, withTimeout, waitFor } = require('./harness')

/** Default consumer settings for group tests: short timeouts, quick fetch loop. */
const GROUP_CONSUMER_DEFAULTS = {
  sessionTimeout: 10_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 100,
  retry: { ...FAST_RETRY, restartOnFailure: async () => false },
}

/**
 * A kafkajs consumer in a group, with everything it saw recorded:
 *   messages: { partition, offset, value } in arrival order
 *   joins:    GROUP_JOIN payloads (memberId, isLeader, groupProtocol, memberAssignment, ...)
 *   crashes:  CRASH payload errors
 */
class Member {
  constructor(ctx, name, consumer) {
    this.ctx = ctx
    this.name = name
    this.consumer = consumer
    this.messages = []
    this.joins = []
    this.crashes = []
    this.disconnected = false
    consumer.on(consumer.events.GROUP_JOIN, event => this.joins.push(event.payload))
    consumer.on(consumer.events.CRASH, event => this.crashes.push(event.payload.error))
  }

  get lastJoin() {
    return this.joins[this.joins.length - 1] || null
  }

  get memberId() {
    return this.lastJoin ? this.lastJoin.memberId : null
  }

  /** Sorted partitions of `topic` in the latest assignment ([] before the first join). */
  partitions(topic) {
    const join = this.lastJoin
    if (!join) return []
    return [...(join.memberAssignment[topic] || [])].sort((a, b) => a - b)
  }

  values() {
    return this.messages.map(m => m.value)
  }

  describe() {
    return `${this.name}: joins=${JSON.stringify(
      this.joins.map(j => j.memberAssignment)
    )} messages=${this.messages.length} crashes=${this.crashes.map(e => e.message).join('; ')}`
  }

  async disconnect() {
    this.ctx.clients.delete(this.consumer)
    this.disconnected = true
    await withTimeout(this.consumer.disconnect(), 15_000, `${this.name}.disconnect()`)
  }
}

/**
 * Connects a consumer to `groupId`, subscribes to `topic` and runs it (eachMessage records
 * every message). Resolves once consumer.run() has returned (kafkajs 2.2.4 has joined and
 * synced by then, but use waitFor on member.joins for assignments after rebalances).
 * `beforeRun(member)` is called before connecting, e.g. to add event listeners.
 */
async function startMember(
  ctx,
  {
    name = 'member',
    groupId,
    topic,
    fromBeginning = true,
    consumerConfig = {},
    runConfig = {},
    kafkaConfig = {},
    onMessage,
    beforeRun,
  }
) {
  const consumer = ctx.track(
    ctx.kafka(kafkaConfig).consumer({ groupId, ...GROUP_CONSUMER_DEFAULTS, ...consumerConfig })
  )
  const member = new Member(ctx, name, consumer)
  if (beforeRun) beforeRun(member)
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning })
  await consumer.run({
    ...runConfig,
    eachMessage: async ({ topic: t, partition, message }) => {
      const record = {
        topic: t,
        partition,
        offset: message.offset,
        value: message.value === null ? null : message.value.toString(),
      }
      member.messages.push(record)
      if (onMessage) await onMessage(record, member)
    },
  })
  return member
}

/** Checks that the latest assignments of `members` partition `partitionCount` partitions. */
function assignmentsCover(members, topic, partitionCount) {
  const all = members.flatMap(m => m.partitions(topic)).sort((a, b) => a - b)
  return (
    all.length === partitionCount && all.every((p, i) => p === i) && members.every(m => m.lastJoin)
  )
}

/**
 * Stops the file's broker (SIGTERM, or SIGKILL with { kill: true }) and starts a new broker
 * process on the same data dir, same port and same flags. Returns the old process's exit.
 */
async function restartBroker(ctx, { kill = false } = {}) {
  const old = ctx.broker
  let exit
  if (kill) {
    old.child.kill('SIGKILL')
    exit = await old.exited
  } else {
    exit = await old.stop()
  }
  const broker = new Broker({ dataDir: old.dataDir, args: old.args })
  broker.port = old.port
  // Same port on purpose (clients keep their bootstrap address). The harness's own start()
  // picks a fresh port; reuse its spawn-and-wait step instead.
  await broker._spawnAndWait()
  ctx.broker = broker
  return exit
}

/**
 * kafkajs's own Cluster object for a client of `ctx` (kafkajs exposes no public API to send
 * a JoinGroup/Heartbeat by hand; its internal Broker methods are used for bad-input tests).
 */
async function rawBroker(ctx) {
  const kafka = ctx.kafka()
  const createCluster = Object.getOwnPropertySymbols(kafka).find(
    s => s.description === 'private:Kafka:createCluster'
  )
  if (!createCluster) throw new Error('kafkajs internals changed: no createCluster symbol')
  const cluster = kafka[createCluster]({})
  await cluster.connect()
  await cluster.refreshMetadata()
  const broker = await cluster.findControllerBroker()
  ctx.track({ disconnect: () => cluster.disconnect() })
  return { cluster, broker }
}

const CHILD_SCRIPT = path.join(__dirname, 'groups-child-consumer.js')

/**
 * Runs a kafkajs consumer in a separate node process (groups-child-consumer.js). Its JSON
 * lines on stdout are collected: joins (assignments), messages, crashes. kill() sends SIGKILL,
 * so the consumer never leaves the group.
 */
function spawnChildConsumer({ address, topic, groupId, sessionTimeout }) {
  const child = spawn(process.execPath, [CHILD_SCRIPT, address, topic, groupId, String(sessionTimeout)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const state = {
    child,
    joins: [],
    messages: [],
    crashes: [],
    stderr: '',
    ready: false,
    exit: null,
  }
  state.exited = new Promise(resolve => {
    child.once('exit', (code, signal) => {
      state.exit = { code, signal }
      resolve(state.exit)
    })
  })
  child.stderr.on('data', chunk => {
    state.stderr += chunk.toString()
  })
  readline.createInterface({ input: child.stdout }).on('line', line => {
    let event
    try {
      event = JSON.parse(line)
    } catch {
      state.stderr += `unparsable stdout line: ${line}\n`
      return
    }
    if (event.event === 'join') state.joins.push(event)
    else if (event.event === 'message') state.messages.push(event)
    else if (event.event === 'crash') state.crashes.push(event.error)
    else if (event.event === 'running') state.ready = true
  })
  state.partitions = t => {
    const join = state.joins[state.joins.length - 1]
    return join ? [...(join.memberAssignment[t] || [])].sort((a, b) => a - b) : []
  }
  state.kill = async () => {
    if (state.exit) return state.exit
    child.kill('SIGKILL')
    return state.exited
  }
  return state
}

/** Waits until admin.fetchOffsets for `groupId` equals `expected` ({ partition: offset }). */
async function waitForCommitted(admin, { groupId, topic, expected, timeoutMs = 10_000 }) {
  let last
  await waitFor(
    async () => {
      const [res] = await admin.fetchOffsets({ groupId, topics: [topic] })
      last = Object.fromEntries(res.partitions.map(p => [p.partition, p.offset]))
      return Object.entries(expected).every(([p, o]) => last[p] === String(o))
    },
    {
      timeoutMs,
      describe: () =>
        `committed offsets of ${groupId} to be ${JSON.stringify(expected)}, last ${JSON.stringify(last)}`,
    }
  )
  return last
}

/** Sorted numeric range [from, to). */
function range(from, to) {
  return Array.from({ length: to - from }, (_, i) => from + i)
}

module.exports = {
  GROUP_CONSUMER_DEFAULTS,
  Member,
  assignmentsCover,
  range,
  rawBroker,
  restartBroker,
  spawnChildConsumer,
  startMember,
  waitForCommitted,
}
