'use strict'

// Starts `sluice serve` with its Kafka and HTTP listeners on free loopback ports (port 0,
// read back from its start-up lines) and its own data directory; stops it after the tests.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const SLUICE_BIN = process.env.SLUICE_BIN || path.join(REPO_ROOT, 'target', 'debug', 'sluice')

class Sluice {
  constructor(args = []) {
    this.args = args
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-console-'))
    this.logFile = path.join(this.dir, 'broker.log')
  }

  /** Spawns the broker and resolves once both listeners are up. */
  async start() {
    if (!fs.existsSync(SLUICE_BIN)) {
      throw new Error(`sluice binary not found at ${SLUICE_BIN}; run \`cargo build -p sluice\` or set SLUICE_BIN`)
    }
    const args = [
      'serve',
      '--listen', '127.0.0.1:0',
      '--http-listen', '127.0.0.1:0',
      '--data-dir', path.join(this.dir, 'data'),
      '--group-initial-rebalance-delay-ms', '0',
      '--offsets-topic-partitions', '3',
      ...this.args,
    ]
    const log = fs.openSync(this.logFile, 'a')
    this.child = spawn(SLUICE_BIN, args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, SLUICE_LOG: 'info', RUST_BACKTRACE: '1' },
    })
    fs.closeSync(log)
    this.exited = new Promise(resolve => this.child.once('exit', resolve))
    const deadline = Date.now() + 30_000
    for (;;) {
      const text = fs.readFileSync(this.logFile, 'utf8')
      const kafka = /Kafka listener on (127\.0\.0\.1:\d+)/.exec(text)
      const http = /HTTP listener on (127\.0\.0\.1:\d+)/.exec(text)
      if (kafka && http) {
        this.kafka = kafka[1]
        this.http = `http://${http[1]}`
        return this
      }
      if (this.child.exitCode !== null) throw new Error(`sluice exited at start:\n${text}`)
      if (Date.now() > deadline) throw new Error(`sluice did not start in time:\n${text}`)
      await new Promise(r => setTimeout(r, 50))
    }
  }

  log() {
    return fs.readFileSync(this.logFile, 'utf8')
  }

  kafkaClient(clientId = 'console-test') {
    return new Kafka({ clientId, brokers: [this.kafka], logLevel: logLevel.NOTHING, retry: { retries: 5 } })
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000)
    await this.exited
    clearTimeout(timer)
  }
}

module.exports = { Sluice }
