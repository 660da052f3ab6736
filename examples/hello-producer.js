// Hello world, part 1: send one message to `my-topic`.
//
//   node hello-producer.js
//
// The topic does not need to exist: the broker creates it on first use.
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const kafka = new Kafka({ clientId: 'my-app', brokers })

const producer = kafka.producer()

const run = async () => {
  await producer.connect()
  const [result] = await producer.send({
    topic: 'my-topic',
    messages: [{ value: 'Hello, Kafka!' }],
  })
  console.log(
    `Sent "Hello, Kafka!" to my-topic partition ${result.partition} at offset ${result.baseOffset}`
  )
  await producer.disconnect()
}

run().catch(e => {
  console.error(e)
  process.exit(1)
})
