// Hello world, part 2: read `my-topic` from the beginning in the consumer group `my-group`.
//
//   node hello-consumer.js              # runs until Ctrl-C
//   MAX_MESSAGES=1 node hello-consumer.js   # stops after the first message
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const maxMessages = Number(process.env.MAX_MESSAGES || 0)
const kafka = new Kafka({ clientId: 'my-app', brokers })

const consumer = kafka.consumer({ groupId: 'my-group' })

let received = 0
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await consumer.disconnect()
}

const run = async () => {
  await consumer.connect()
  await consumer.subscribe({ topic: 'my-topic', fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      console.log(
        `Received: ${message.value.toString()} (topic ${topic}, partition ${partition}, offset ${message.offset})`
      )
      received += 1
      // Disconnecting waits for this handler to return, so do it afterwards.
      if (maxMessages > 0 && received >= maxMessages) setImmediate(stop)
    },
  })
}

process.on('SIGINT', stop)
process.on('SIGTERM', stop)

run().catch(e => {
  console.error(e)
  process.exit(1)
})
