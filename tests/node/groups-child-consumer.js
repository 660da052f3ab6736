'use strict'

// A kafkajs group consumer in its own process, for tests that SIGKILL a group member.
// Usage: node groups-child-consumer.js <host:port> <topic> <groupId> <sessionTimeoutMs>
// Writes one JSON object per line to stdout: {event:'join'|'message'|'crash'|'running', ...}.

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const [address, topic, groupId, sessionTimeout] = process.argv.slice(2)
const emit = obj => process.stdout.write(JSON.stringify(obj) + '\n')

async function main() {
  const kafka = new Kafka({
    clientId: 'sluice-node-tests-child',
    brokers: [address],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 5 },
  })
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: Number(sessionTimeout),
    rebalanceTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
    retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 5, restartOnFailure: async () => false },
  })
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) =>
    emit({ event: 'join', memberId: payload.memberId, memberAssignment: payload.memberAssignment })
  )
  consumer.on(consumer.events.CRASH, ({ payload }) => emit({ event: 'crash', error: payload.error.message }))
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) =>
      emit({ event: 'message', partition, offset: message.offset, value: message.value.toString() }),
  })
  emit({ event: 'running' })
}

main().catch(e => {
  emit({ event: 'crash', error: e.message })
  process.exit(1)
})
