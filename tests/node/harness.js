'use strict'

// Shared harness for the kafkajs end-to-end tests.
//
// Every test file starts its own `sluice serve` process on a free port with its own
// temporary data directory (see `useBroker`), and stops it in an `after` hook. The broker's
// stderr/stdout go to `broker-data.log` in that temporary directory; when a test fails, the
// `after` hook prints the tail of that log and keeps the directory.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { before, after } = require('node:test')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const REPO_ROOT = path.resolve(__dirname, '..', '..')
const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO_ROOT, 'target', 'debug', 'sluice')

const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 10_000

/** Resolves with a port that was free a moment ago (bind 127.0.0.1:0, read it, close). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function canConnect(port) {
  return new Promise(resolve => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const done = ok => {
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
    socket.setTimeout(1000, () => done(false))
  })
}

const delay = ms => new Promise(resolve => setTimeout(resolve, ms))

/**
 * Polls `condition` (sync or async) every `intervalMs` until it returns a truthy value, which
 * is returned. Throws after `timeoutMs`, with `describe()` in the message if given.
 */
async function waitFor(condition, { timeoutMs = 10_000, intervalMs = 50, describe } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      const result = await condition()
      if (result) return result
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      const what = describe ? describe() : 'condition'
      const cause = lastError ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await delay(intervalMs)
  }
}

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
function withTimeout(promise, ms, describe) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const what = typeof describe === 'function' ? describe() : describe
      reject(new Error(`timed out after ${ms} ms: ${what}`))
    }, ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function tail(file, lines = 80) {
  try {
    const text = fs.readFileSync(file, 'utf8')
    return text.split('\n').slice(-lines).join('\n')
  } catch (e) {
    return `(no broker log: ${e.message})`
  }
}

/**
 * A running `sluice serve` process.
 */
class Broker {
  constructor({ dataDir, args = [] }) {
    this.dataDir = dataDir
    this.args = args
    this.logFile = path.join(dataDir, '..', `broker-${path.basename(dataDir)}.log`)
    this.child = null
    this.exit = null
  }

  get address() {
    return `127.0.0.1:${this.port}`
  }

  async start() {
    if (!fs.existsSync(SLUICE_BIN)) {
      throw new Error(
        `sluice binary not found at ${SLUICE_BIN}; build it with \`cargo build -p sluice\` or set SLUICE_BIN`
      )
    }
    // The free port may be taken between our probe and the broker's bind; try a few ports.
    let lastError
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort()
      try {
        await this._spawnAndWait()
        return this
      } catch (e) {
        lastError = e
        // Only a lost race for the port is worth another try.
        if (this.exit === null || !/in use|AddrInUse/i.test(this.logTail(20))) throw e
      }
    }
    throw lastError
  }

  async _spawnAndWait() {
    const extra = typeof this.args === 'function' ? await this.args(this.port) : this.args
    const args = [
      'serve',
      '--listen',
      `127.0.0.1:${this.port}`,
      '--data-dir',
      this.dataDir,
      '--group-initial-rebalance-delay-ms',
      '0',
      // Test brokers run side by side: none takes the default HTTP port.
      '--http-listen',
      'off',
      ...extra,
    ]
    fs.mkdirSync(path.dirname(this.logFile), { recursive: true })
    fs.appendFileSync(this.logFile, `\n=== ${SLUICE_BIN} ${args.join(' ')}\n`)
    const logFd = fs.openSync(this.logFile, 'a')
    this.exit = null
    const child = spawn(SLUICE_BIN, args, {
      stdio: ['ignore', logFd, logFd],
      env: { RUST_BACKTRACE: '1', ...process.env },
    })
    fs.closeSync(logFd)
    this.child = child
    this.exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      })
      child.once('error', err => {
        this.exit = { code: null, signal: null, error: err }
        resolve(this.exit)
      })
    })

    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      if (this.exit) {
        throw new Error(
          `sluice exited during startup (${JSON.stringify(this.exit)}); log:\n${tail(this.logFile, 40)}`
        )
      }
      if (this.hasStarted() && (await canConnect(this.port))) return
      if (Date.now() > deadline) {
        throw new Error(
          `sluice did not accept connections on ${this.address} within ${START_TIMEOUT_MS} ms; log:\n${tail(
            this.logFile,
            40
          )}`
        )
      }
      await delay(50)
    }
  }

  /** SIGTERM, then SIGKILL after a timeout. Resolves with { code, signal, killed }. */
  async stop({ timeoutMs = STOP_TIMEOUT_MS } = {}) {
    if (!this.child) return null
    if (this.exit) return this.exit
    this.child.kill('SIGTERM')
    let timer
    const timedOut = new Promise(resolve => {
      timer = setTimeout(() => resolve(null), timeoutMs)
    })
    const result = await Promise.race([this.exited, timedOut])
    clearTimeout(timer)
    if (result) return { ...result, killed: false }
    this.child.kill('SIGKILL')
    const killed = await this.exited
    return { ...killed, killed: true }
  }

  logTail(lines = 80) {
    return tail(this.logFile, lines)
  }

  /**
   * Whether the latest start logged `Sluice <version> started`: its logs are open and, in a
   * cluster, the metadata quorum runs (a node binds its port before that).
   */
  hasStarted() {
    let text
    try {
      text = fs.readFileSync(this.logFile, 'utf8')
    } catch {
      return false
    }
    const latest = text.slice(text.lastIndexOf('\n=== '))
    return /Sluice \S+ started/.test(latest)
  }
}

let topicCounter = 0

/** A topic name unique to this process and call, e.g. `hello-12345-3-k2j4`. */
function uniqueTopic(prefix = 'topic') {
  topicCounter += 1
  const random = Math.random().toString(36).slice(2, 6)
  return `${prefix}-${process.pid}-${topicCounter}-${random}`
}

const FAST_RETRY = { initialRetryTime: 100, maxRetryTime: 1000, retries: 5 }

/**
 * Registers before/after hooks that start and stop one broker (or a cluster) for the current
 * test file and returns a context with helpers bound to it. Options:
 *   - args: extra `sluice serve` flags, e.g. ['--auto-create-topics', 'false'], or (a single
 *     broker) a function of the port clients bootstrap from that returns them (or a promise
 *     of them), e.g. to name that port in `--listeners`
 *   - nodes: how many nodes (default 1); more than one start a cluster of node ids 1..nodes
 *     (each its own rack `rack-<id>`) and clients bootstrap from all of them
 */
function useBroker({ args = [], nodes = 1 } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-node-'))
  const ctx = new TestContext(root, args)
  before(async () => {
    if (nodes > 1) {
      await ctx.startCluster(nodes)
    } else {
      await ctx.startBroker()
    }
  })
  after(async () => {
    await ctx.cleanup()
  })
  return ctx
}

class TestContext {
  constructor(root, args) {
    this.root = root
    this.args = args
    this.broker = null
    // Every node of a cluster (the single broker otherwise); `broker` is the first.
    this.nodes = []
    this.clients = new Set()
    this.failed = false
  }

  async startBroker({ dataDir = path.join(this.root, 'data'), args = this.args } = {}) {
    this.broker = new Broker({ dataDir, args })
    this.nodes = [this.broker]
    await this.broker.start()
    return this.broker
  }

  /** Starts nodes 1..n of one cluster at once, then waits until each lists all n brokers. */
  async startCluster(n) {
    const ids = Array.from({ length: n }, (_, i) => i + 1)
    const clusterPorts = []
    for (const _ of ids) clusterPorts.push(await freePort())
    const voters = ids.map((id, i) => `${id}@127.0.0.1:${clusterPorts[i]}`).join(',')
    this.nodes = ids.map(
      (id, i) =>
        new Broker({
          dataDir: path.join(this.root, `node-${id}`),
          args: [
            ...this.args,
            '--node-id',
            `${id}`,
            '--cluster-listen',
            `127.0.0.1:${clusterPorts[i]}`,
            '--voters',
            voters,
            '--rack',
            `rack-${id}`,
          ],
        })
    )
    this.broker = this.nodes[0]
    await Promise.all(this.nodes.map(node => node.start()))
    for (const node of this.nodes) {
      const admin = this.kafka({ brokers: [node.address] }).admin()
      await admin.connect()
      try {
        await waitFor(async () => (await admin.describeCluster()).brokers.length === n, {
          timeoutMs: 30_000,
          describe: () => `node at ${node.address} to list ${n} brokers`,
        })
      } finally {
        await admin.disconnect()
      }
    }
  }

  /** The first node's `host:port`. */
  get address() {
    return this.broker.address
  }

  /** Every node's `host:port`, for a client's bootstrap list. */
  get brokers() {
    return this.nodes.map(node => node.address)
  }

  /** The node ids: [1] for a single broker, [1, ..., n] for a cluster. */
  get nodeIds() {
    return this.nodes.map((_, i) => i + 1)
  }

  /** A kafkajs client against this file's broker with quiet logs and short retries. */
  kafka(config = {}) {
    return new Kafka({
      clientId: 'sluice-node-tests',
      brokers: this.brokers,
      logLevel: process.env.KAFKAJS_LOG_LEVEL ? logLevel[process.env.KAFKAJS_LOG_LEVEL] : logLevel.NOTHING,
      connectionTimeout: 3000,
      requestTimeout: 15_000,
      retry: FAST_RETRY,
      ...config,
    })
  }

  /** Tracks a kafkajs producer/consumer/admin so that it is disconnected after the test. */
  track(client) {
    this.clients.add(client)
    return client
  }

  async producer(config = {}, kafkaConfig = {}) {
    const producer = this.track(this.kafka(kafkaConfig).producer({ retry: FAST_RETRY, ...config }))
    await producer.connect()
    return producer
  }

  async admin(kafkaConfig = {}) {
    const admin = this.track(this.kafka(kafkaConfig).admin({ retry: FAST_RETRY }))
    await admin.connect()
    return admin
  }

  /**
   * Consumes from `topic` with a new consumer group until `count` messages have arrived (or
   * `until(messages)` is true), then disconnects. Rejects after `timeoutMs` or if the consumer
   * crashes. Messages are returned in arrival order as
   * { topic, partition, offset, key, value, headers, timestamp }.
   */
  async consume({
    topic,
    count,
    until,
    groupId = uniqueTopic('group'),
    fromBeginning = true,
    timeoutMs = 20_000,
    consumerConfig = {},
    kafkaConfig = {},
  }) {
    const consumer = this.track(
      this.kafka(kafkaConfig).consumer({
        groupId,
        sessionTimeout: 10_000,
        rebalanceTimeout: 10_000,
        heartbeatInterval: 1000,
        maxWaitTimeInMs: 250,
        retry: { ...FAST_RETRY, restartOnFailure: async () => false },
        ...consumerConfig,
      })
    )
    const messages = []
    const enough = until || (msgs => msgs.length >= count)
    let resolveDone
    let rejectDone
    const done = new Promise((resolve, reject) => {
      resolveDone = resolve
      rejectDone = reject
    })
    consumer.on(consumer.events.CRASH, event => rejectDone(event.payload.error))
    try {
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning })
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          messages.push({
            topic,
            partition,
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers: message.headers,
            timestamp: message.timestamp,
          })
          if (enough(messages)) resolveDone()
        },
      })
      await withTimeout(
        done,
        timeoutMs,
        () => `consuming ${topic}: got ${messages.length} of ${count ?? '?'} messages`
      )
      return messages
    } finally {
      this.clients.delete(consumer)
      await withTimeout(consumer.disconnect(), 10_000, 'consumer.disconnect()').catch(() => {})
    }
  }

  /** Disconnects every tracked client (each bounded by a timeout). */
  async disconnectAll() {
    const clients = Array.from(this.clients)
    this.clients.clear()
    await Promise.all(
      clients.map(c => withTimeout(c.disconnect(), 10_000, 'disconnect()').catch(() => {}))
    )
  }

  /**
   * Wraps a test body: on failure, names the broker log in a diagnostic and remembers the
   * failure (the `after` hook then prints the log's tail and keeps the temporary directory);
   * always disconnects the clients the test created.
   */
  wrap(fn) {
    return async t => {
      try {
        await fn(t)
      } catch (e) {
        this.failed = true
        // The tail of the log is printed by the `after` hook (multi-line diagnostics are
        // escaped by the TAP reporter); point at the file here.
        for (const node of this.nodes) t.diagnostic(`broker log: ${node.logFile}`)
        throw e
      } finally {
        await this.disconnectAll()
      }
    }
  }

  async cleanup() {
    await this.disconnectAll()
    // The single broker may have been replaced by a restart (`broker` is the current one).
    const nodes = this.nodes.length > 1 ? this.nodes : [this.broker].filter(Boolean)
    const results = await Promise.all(nodes.map(node => node.stop()))
    const result = results[0] ?? null
    if (this.failed && nodes.length > 0) {
      for (const node of nodes) {
        process.stderr.write(
          `\n--- sluice broker log ${node.logFile} (last 200 lines) ---\n${node.logTail(200)}\n---\n`
        )
      }
    } else if (!process.env.SLUICE_KEEP_DATA) {
      fs.rmSync(this.root, { recursive: true, force: true })
    }
    // Safety net: if a kafkajs timer keeps the event loop alive after everything is closed,
    // do not hang the whole suite.
    setTimeout(() => {
      process.stderr.write('harness: event loop still busy 5 s after cleanup; exiting\n')
      process.exit(process.exitCode ?? 0)
    }, 5000).unref()
    return result
  }
}

/**
 * Follows `.cause` / `.originalError` links and returns the first error carrying a Kafka
 * protocol error `type` (e.g. UNKNOWN_TOPIC_OR_PARTITION), or null.
 */
function protocolErrorOf(error) {
  const seen = new Set()
  const queue = [error]
  while (queue.length > 0) {
    const e = queue.shift()
    if (!e || typeof e !== 'object' || seen.has(e)) continue
    seen.add(e)
    if (typeof e.type === 'string') return e
    queue.push(e.cause, e.originalError)
    if (Array.isArray(e.errors)) queue.push(...e.errors)
  }
  return null
}

module.exports = {
  REPO_ROOT,
  SLUICE_BIN,
  Broker,
  FAST_RETRY,
  delay,
  freePort,
  protocolErrorOf,
  uniqueTopic,
  useBroker,
  waitFor,
  withTimeout,
}
