'use strict'

// Runs every script in examples/ against a test broker and checks what it prints, so the
// tutorials users start from cannot rot.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { useBroker, REPO_ROOT } = require('../harness')

const ctx = useBroker()
const EXAMPLES = path.join(REPO_ROOT, 'examples')

/** Runs `node examples/<script>` with KAFKA_BROKERS pointing at the test broker. */
function runExample(script, env = {}, timeoutMs = 45_000) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(EXAMPLES, script)],
      {
        cwd: EXAMPLES,
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
        env: {
          ...process.env,
          KAFKA_BROKERS: ctx.address,
          KAFKAJS_NO_PARTITIONER_WARNING: '1',
          // Use examples/node_modules when installed, else the test suite's kafkajs 2.2.4.
          NODE_PATH: path.join(__dirname, '..', 'node_modules'),
          ...env,
        },
      },
      (error, stdout, stderr) => {
        if (error) {
          error.message += `\n--- ${script} stdout ---\n${stdout}\n--- stderr ---\n${stderr}`
          reject(error)
        } else {
          resolve({ stdout, stderr, lines: stdout.split('\n').filter(l => l && !l.startsWith('{')) })
        }
      }
    )
  })
}

test(
  'hello-producer.js then hello-consumer.js',
  { timeout: 90_000 },
  ctx.wrap(async () => {
    const produced = await runExample('hello-producer.js')
    assert.deepEqual(produced.lines, ['Sent "Hello, Kafka!" to my-topic partition 0 at offset 0'])

    const consumed = await runExample('hello-consumer.js', { MAX_MESSAGES: '1' })
    assert.deepEqual(consumed.lines, ['Received: Hello, Kafka! (topic my-topic, partition 0, offset 0)'])
  })
)

test(
  'temperature-admin.js creates Temperature with 3 partitions, then finds it exists',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const partitionLines = [0, 1, 2].map(p => `  partition ${p}: leader 1, replicas [1], isr [1]`)
    const first = await runExample('temperature-admin.js')
    assert.deepEqual(first.lines, [
      'Created topic Temperature',
      'Topic Temperature has 3 partitions',
      ...partitionLines,
    ])
    const second = await runExample('temperature-admin.js')
    assert.deepEqual(second.lines, [
      'Topic Temperature already exists',
      'Topic Temperature has 3 partitions',
      ...partitionLines,
    ])
  })
)

test(
  'temperature-producer.js and temperature-monitor.js raise the expected alerts',
  { timeout: 90_000 },
  ctx.wrap(async () => {
    const produced = await runExample('temperature-producer.js')
    assert.equal(produced.lines.length, 1)
    assert.match(produced.lines[0], /^Sent 6 readings to Temperature \(partitions [0-2](, [0-2])*\)$/)

    const monitored = await runExample('temperature-monitor.js', { MAX_MESSAGES: '6' })
    const readings = monitored.lines.filter(l => l.startsWith('Reading '))
    const alerts = monitored.lines.filter(l => l.startsWith('ALERT '))
    assert.equal(readings.length, 6, monitored.stdout)
    // Per sensor, the readings arrive in the order they were sent.
    const perSensor = sensor =>
      readings
        .filter(l => l.startsWith(`Reading ${sensor} `))
        .map(l => l.replace(/ \[partition \d, offset \d+\]$/, ''))
    assert.deepEqual(perSensor('sensor-1'), [
      'Reading sensor-1 (key sensor-1): 21.5 celsius',
      'Reading sensor-1 (key sensor-1): 22.1 celsius',
    ])
    assert.deepEqual(perSensor('sensor-2'), [
      'Reading sensor-2 (key sensor-2): 23 celsius',
      'Reading sensor-2 (key sensor-2): 35.4 celsius',
    ])
    assert.deepEqual(perSensor('sensor-3'), [
      'Reading sensor-3 (key sensor-3): 31.2 celsius',
      'Reading sensor-3 (key sensor-3): 19.8 celsius',
    ])
    assert.deepEqual(alerts.sort(), [
      'ALERT sensor-2: 35.4 °C is above 30 °C',
      'ALERT sensor-3: 31.2 °C is above 30 °C',
    ])
  })
)

test(
  'location-producer.js and location-consumer.js: each update on its partition with its key',
  { timeout: 90_000 },
  ctx.wrap(async () => {
    const produced = await runExample('location-producer.js')
    assert.deepEqual(produced.lines, [
      'Sent Alice (south) to partition 0 at offset 0',
      'Sent Bob (north) to partition 1 at offset 0',
      'Sent Carol (south) to partition 0 at offset 1',
      'Sent Dave (east) to partition 1 at offset 1',
      'Sent Eve (south) to partition 0 at offset 2',
    ])

    const consumed = await runExample('location-consumer.js', { MAX_MESSAGES: '5' })
    assert.deepEqual([...consumed.lines].sort(), [
      'partition 0 offset 0 key=Location Updates Alice is in the south',
      'partition 0 offset 1 key=Location Updates Carol is in the south',
      'partition 0 offset 2 key=Location Updates Eve is in the south',
      'partition 1 offset 0 key=Location Updates Bob is in the north',
      'partition 1 offset 1 key=Location Updates Dave is in the east',
    ])
  })
)
