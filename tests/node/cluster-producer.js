'use strict'

// A kafkajs producer that keeps writing while the cluster's nodes restart one by one: the
// e2e test of rolling restarts (tests/e2e/tests/replication.rs) and `sluice bench failover
// --scenario rolling-restart --kafkajs-producer` run it.
//
// Environment: BROKERS (comma-separated bootstrap list), TOPIC, PARTITIONS.
// One producer (idempotent, acks=all) and one send loop per partition, as an application
// whose writes to different partitions do not wait for each other: the loop of partition p
// sends records `record-<id>` with id = p, p + PARTITIONS, p + 2 * PARTITIONS, ... one at a
// time, so a send that kafkajs is still retrying holds up only its own partition. Prints one
// JSON line per outcome:
//   {"id":7,"partition":1,"offset":"2"}   acknowledged
//   {"id":7,"error":"..."}                send threw (after kafkajs' own retries)
// Stops when stdin closes, then prints {"done":true,"sent":N,"errors":N} and exits 0.

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const brokers = (process.env.BROKERS || '').split(',').filter(Boolean)
const topic = process.env.TOPIC
const partitions = Number(process.env.PARTITIONS || '1')
if (brokers.length === 0 || !topic) {
  console.error('set BROKERS and TOPIC')
  process.exit(2)
}

let stopping = false
process.stdin.on('end', () => {
  stopping = true
})
process.stdin.on('close', () => {
  stopping = true
})
process.stdin.resume()

const print = obj => process.stdout.write(`${JSON.stringify(obj)}\n`)
const delay = ms => new Promise(resolve => setTimeout(resolve, ms))

async function main() {
  const kafka = new Kafka({
    clientId: 'rolling-restart-producer',
    brokers,
    logLevel: logLevel.NOTHING,
    // No retry settings: kafkajs' defaults (5 retries, 300 ms doubling to at most 30 s).
  })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let sent = 0
  let errors = 0
  const sendLoop = async partition => {
    for (let id = partition; !stopping; id += partitions) {
      try {
        const [result] = await producer.send({
          topic,
          acks: -1,
          messages: [{ key: `key-${id}`, value: `record-${id}`, partition }],
        })
        print({ id, partition: result.partition, offset: result.baseOffset })
      } catch (e) {
        errors += 1
        print({ id, error: `${e.name}: ${e.message}` })
      }
      sent += 1
      await delay(5)
    }
  }
  await Promise.all(Array.from({ length: partitions }, (_, p) => sendLoop(p)))
  await producer.disconnect()
  print({ done: true, sent, errors })
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
