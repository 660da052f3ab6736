'use strict'

// kafkajs over TLS and SASL: one broker with PLAINTEXT, SSL (client certificates requested)
// and SASL_SSL listeners, certificates made by tests/lib/make-test-certs.sh, the bootstrap
// user admin as the only super user and the authorizer on. 1,000 keyed records round-trip
// over each mechanism and mTLS; failed logins get their error within 10 s; the README's
// Security example (a user and ACLs made with the CLI, the kafkajs config shown there) works
// as written.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync, execFile } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const {
  REPO_ROOT,
  SLUICE_BIN,
  freePort,
  protocolErrorOf,
  uniqueTopic,
  useBroker,
} = require('../harness')

const ADMIN = { username: 'admin', password: 'admin-secret' }
const ports = {}
let certs

const ctx = useBroker({
  args: async port => {
    certs = path.join(ctx.root, 'certs')
    execFileSync(path.join(REPO_ROOT, 'tests', 'lib', 'make-test-certs.sh'), [certs])
    ports.plaintext = port
    ports.ssl = await freePort()
    ports.saslSsl = await freePort()
    return [
      '--listeners',
      [
        `PLAINTEXT://127.0.0.1:${port}`,
        `SSL://127.0.0.1:${ports.ssl}`,
        `SASL_SSL://127.0.0.1:${ports.saslSsl}`,
      ].join(','),
      '--ssl-cert-file',
      path.join(certs, 'server.pem'),
      '--ssl-key-file',
      path.join(certs, 'server.key'),
      '--ssl-ca-file',
      path.join(certs, 'ca.pem'),
      '--ssl-client-auth',
      'requested',
      '--bootstrap-user',
      `${ADMIN.username}:${ADMIN.password}`,
      '--authorizer',
      'on',
      '--super-users',
      'User:admin',
    ]
  },
})

const cert = name => fs.readFileSync(path.join(certs, name), 'utf-8')

/** kafkajs settings for SASL_SSL with `mechanism` as `user`. */
const saslSsl = (mechanism, user = ADMIN) => ({
  brokers: [`127.0.0.1:${ports.saslSsl}`],
  ssl: { ca: [cert('ca.pem')] },
  sasl: { mechanism, ...user },
})

/** kafkajs settings for SSL with the client certificate (CN=alice,OU=eng,O=sluice). */
const mutualTls = () => ({
  brokers: [`127.0.0.1:${ports.ssl}`],
  ssl: { ca: [cert('ca.pem')], cert: cert('client.pem'), key: cert('client.key') },
})

/** Runs the sluice CLI with `env` added; resolves with stdout, rejects with stderr. */
function sluice(args, { env = {}, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      SLUICE_BIN,
      args,
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`sluice ${args.join(' ')}: ${error.message}\n${stderr}`))
        else resolve(stdout)
      }
    )
    if (input !== undefined) child.stdin.end(input)
  })
}

/** Produces `n` keyed records with `kafkaConfig` and reads them back with it; checks all. */
async function roundTrip(kafkaConfig, label) {
  const topic = uniqueTopic(`secure-${label}`)
  const admin = await ctx.admin(saslSsl('scram-sha-256'))
  assert.equal(
    await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] }),
    true
  )
  const n = 1000
  const sent = Array.from({ length: n }, (_, i) => ({ key: `key-${i % 37}`, value: `value-${i}` }))
  const producer = await ctx.producer({}, kafkaConfig)
  const acks = await producer.send({ topic, acks: -1, messages: sent })
  assert.deepEqual(
    acks.map(a => [a.partition, a.errorCode]).sort(),
    [
      [0, 0],
      [1, 0],
      [2, 0],
      [3, 0],
    ]
  )
  const received = await ctx.consume({ topic, count: n, kafkaConfig, timeoutMs: 30_000 })
  assert.equal(received.length, n)
  // Every key lands on one partition, and each key's values arrive in the order sent.
  const byKey = new Map()
  for (const m of received) {
    const key = m.key.toString()
    const entry = byKey.get(key) ?? { partitions: new Set(), values: [] }
    entry.partitions.add(m.partition)
    entry.values.push(m.value.toString())
    byKey.set(key, entry)
  }
  assert.equal(byKey.size, 37)
  for (const [key, { partitions, values }] of byKey) {
    assert.equal(partitions.size, 1, `${key} on partitions ${[...partitions]}`)
    assert.deepEqual(
      values,
      sent.filter(r => r.key === key).map(r => r.value),
      `${key}: values in order`
    )
  }
}

for (const [label, config] of [
  ['PLAIN', () => saslSsl('plain')],
  ['SCRAM-SHA-256', () => saslSsl('scram-sha-256')],
  ['SCRAM-SHA-512', () => saslSsl('scram-sha-512')],
]) {
  test(
    `SASL_SSL ${label}: 1,000 keyed records produced and read back`,
    { timeout: 60_000 },
    ctx.wrap(() => roundTrip(config(), label.toLowerCase()))
  )
}

test(
  'SSL with a client certificate: the certificate names the principal, 1,000 keyed records',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    // User:CN=alice,OU=eng,O=sluice may do anything on topics and groups.
    const admin = ['--brokers', `127.0.0.1:${ports.saslSsl}`, '--security-protocol', 'SASL_SSL']
    const env = {
      SLUICE_SSL_CA_FILE: path.join(certs, 'ca.pem'),
      SLUICE_SASL_USERNAME: ADMIN.username,
      SLUICE_SASL_PASSWORD: ADMIN.password,
    }
    const principal = 'User:CN=alice,OU=eng,O=sluice'
    for (const resource of ['--topic', '--group']) {
      const acl = ['--allow', principal, '--operation', 'ALL', resource, '*']
      await sluice(['acl', 'create', ...admin, ...acl], { env })
    }
    await roundTrip(mutualTls(), 'mtls')
  })
)

/** Asserts that connecting a producer with `kafkaConfig` fails within 10 s, as `check` says. */
async function refused(kafkaConfig, check) {
  const started = Date.now()
  const producer = ctx.kafka({ ...kafkaConfig, retry: { retries: 0 } }).producer()
  ctx.track(producer)
  await assert.rejects(producer.connect(), check)
  const elapsed = Date.now() - started
  assert.ok(elapsed < 10_000, `refused after ${elapsed} ms`)
}

const saslFailure = message => error => {
  assert.equal(error.name, 'KafkaJSSASLAuthenticationError', `${error.name}: ${error.message}`)
  assert.match(error.message, message)
  return true
}

test(
  'a wrong password, an unknown user and an unoffered mechanism are refused within 10 s',
  { timeout: 60_000 },
  ctx.wrap(async () => {
    const scram = /invalid credentials with SASL mechanism SCRAM-SHA-256/
    for (const user of [
      { username: 'admin', password: 'wrong' },
      { username: 'nobody', password: 'admin-secret' },
    ]) {
      await refused(saslSsl('scram-sha-256', user), saslFailure(scram))
    }
    await refused(
      saslSsl('plain', { username: 'admin', password: 'wrong' }),
      saslFailure(/Invalid username or password/)
    )
    // The broker offers PLAIN and SCRAM only (OAUTHBEARER is not enabled).
    await refused(
      {
        ...saslSsl('oauthbearer'),
        sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: 'x' }) },
      },
      error => {
        const protocolError = protocolErrorOf(error)
        assert.ok(protocolError, `${error.name}: ${error.message}`)
        assert.equal(protocolError.type, 'UNSUPPORTED_SASL_MECHANISM')
        return true
      }
    )
    // The broker still serves.
    const admin = await ctx.admin(saslSsl('scram-sha-512'))
    assert.ok(Array.isArray(await admin.listTopics()))
  })
)

test(
  'a plaintext client on the TLS port fails within 10 s and the broker logs it once',
  { timeout: 30_000 },
  ctx.wrap(async () => {
    await refused({ brokers: [`127.0.0.1:${ports.ssl}`], connectionTimeout: 3000 }, () => true)
    const lines = ctx.broker
      .logTail(10_000)
      .split('\n')
      .filter(l => l.includes(`plaintext client on TLS listener SSL://127.0.0.1:${ports.ssl}`))
    assert.equal(lines.length, 1, lines.join('\n'))
    const admin = await ctx.admin(saslSsl('scram-sha-256'))
    assert.ok(Array.isArray(await admin.listTopics()))
  })
)

test(
  "the README's Security example: a SCRAM user with ACLs made by the CLI, kafkajs as in the README",
  { timeout: 60_000 },
  ctx.wrap(async () => {
    // The README's commands, with its environment variables.
    const env = {
      SLUICE_BROKERS: `127.0.0.1:${ports.saslSsl}`,
      SLUICE_SECURITY_PROTOCOL: 'SASL_SSL',
      SLUICE_SSL_CA_FILE: path.join(certs, 'ca.pem'),
      SLUICE_SASL_MECHANISM: 'SCRAM-SHA-256',
      SLUICE_SASL_USERNAME: 'admin',
      SLUICE_SASL_PASSWORD: 'admin-secret',
    }
    const topic = uniqueTopic('orders')
    const group = uniqueTopic('order-readers')
    await sluice(['topic', 'create', topic, '--partitions', '3'], { env })
    await sluice(['user', 'create', 'alice', '--password-stdin'], { env, input: 'alice-secret\n' })
    const alicesAcls = [
      ['--operation', 'WRITE', '--operation', 'READ', '--topic', topic],
      ['--operation', 'READ', '--group', group],
    ]
    for (const acl of alicesAcls) {
      await sluice(['acl', 'create', '--allow', 'User:alice', ...acl], { env })
    }
    await sluice(['quota', 'alter', '--user', 'alice', '--producer-byte-rate', '1048576'], { env })

    // The README's kafkajs configuration.
    const alice = {
      brokers: [`127.0.0.1:${ports.saslSsl}`],
      ssl: { ca: [fs.readFileSync(path.join(certs, 'ca.pem'), 'utf-8')] },
      sasl: { mechanism: 'scram-sha-256', username: 'alice', password: 'alice-secret' },
    }
    const producer = await ctx.producer({}, alice)
    await producer.send({ topic, messages: [{ key: 'order-1', value: 'two coffees' }] })
    const [message] = await ctx.consume({ topic, count: 1, groupId: group, kafkaConfig: alice })
    assert.equal(message.value.toString(), 'two coffees')

    // Another topic is not alice's: TOPIC_AUTHORIZATION_FAILED, as Kafka answers.
    const other = uniqueTopic('payments')
    await sluice(['topic', 'create', other], { env })
    await assert.rejects(
      producer.send({ topic: other, messages: [{ value: 'x' }] }),
      error => {
        const protocolError = protocolErrorOf(error)
        assert.ok(protocolError, `${error.name}: ${error.message}`)
        assert.equal(protocolError.type, 'TOPIC_AUTHORIZATION_FAILED')
        return true
      }
    )
  })
)
