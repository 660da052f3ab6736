'use strict'

// Runs every script in examples/ against a test broker and checks what it prints, so the
// tutorials users start from cannot rot.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFile, spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { useBroker, waitFor, REPO_ROOT } = require('../harness')

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

/** The README's quick-start kafkajs snippet: the first ```js block of README.md. */
function readmeSnippet() {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8')
  const match = readme.match(/```js\n([\s\S]*?)```/)
  assert.ok(match, 'README.md has a ```js block')
  return match[1]
}

test(
  "the README's kafkajs snippet runs as a .js file and prints the message it sent",
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const snippet = readmeSnippet()
    assert.ok(snippet.includes("brokers: ['localhost:9092']"), snippet)
    // The only changes: the test broker's address, and names no other test uses.
    const script = snippet
      .replace("brokers: ['localhost:9092']", `brokers: ['${ctx.address}']`)
      .replaceAll("'my-topic'", "'readme-topic'")
      .replaceAll("'my-group'", "'readme-group'")
    assert.ok(script.includes("'readme-topic'") && script.includes("'readme-group'"), script)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-readme-'))
    const file = path.join(dir, 'hello.js')
    fs.writeFileSync(file, script)
    const child = spawn(process.execPath, [file], {
      cwd: dir,
      env: {
        ...process.env,
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        NODE_PATH: path.join(__dirname, '..', 'node_modules'),
      },
    })
    let stdout = ''
    let stderr = ''
    let exited = null
    child.stdout.on('data', d => (stdout += d))
    child.stderr.on('data', d => (stderr += d))
    child.on('exit', code => (exited = code))
    const printed = () => stdout.split('\n').filter(l => l && !l.startsWith('{'))
    try {
      // The consumer runs until stopped: wait for its first message (or an early exit).
      await waitFor(() => printed().length > 0 || exited !== null, {
        timeoutMs: 45_000,
        describe: () => `README snippet output: ${stdout}\n${stderr}`,
      })
      assert.equal(exited, null, `the snippet exited with ${exited}:\n${stderr}`)
      assert.deepEqual(printed(), ['Hello, Kafka!'])
    } finally {
      child.kill('SIGKILL')
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
)
