// Location updates, part 2: print every update with the partition it arrived on.
//
//   node location-consumer.js              # runs until Ctrl-C
//   MAX_MESSAGES=5 node location-consumer.js   # stops after five updates
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const maxMessages = Number(process.env.MAX_MESSAGES || 0)
const kafka = new Kafka({ clientId: 'my-app', brokers })

const consumer = kafka.consumer({ groupId: 'location-group' })

let received = 0
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await consumer.disconnect()
}

const run = async () => {
  await consumer.connect()
  await consumer.subscribe({ topic: 'location-updates', fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const { name, location } = JSON.parse(message.value.toString())
      console.log(
        `partition ${partition} offset ${message.offset} key=${message.key} ${name} is in the ${location}`
      )
      received += 1
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
