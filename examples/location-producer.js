// Location updates, part 1: send people's locations to the 2-partition topic
// `location-updates`, choosing the partition by location (south -> 0, anything else -> 1).
//
//   node location-producer.js
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const kafka = new Kafka({ clientId: 'my-app', brokers })

const topic = 'location-updates'
const updates = [
  { name: 'Alice', location: 'south' },
  { name: 'Bob', location: 'north' },
  { name: 'Carol', location: 'south' },
  { name: 'Dave', location: 'east' },
  { name: 'Eve', location: 'south' },
]

const run = async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })
  await admin.disconnect()

  const producer = kafka.producer()
  await producer.connect()
  for (const { name, location } of updates) {
    const [result] = await producer.send({
      topic,
      messages: [
        {
          partition: location === 'south' ? 0 : 1,
          key: 'Location Updates',
          value: JSON.stringify({ name, location }),
        },
      ],
    })
    console.log(`Sent ${name} (${location}) to partition ${result.partition} at offset ${result.baseOffset}`)
  }
  await producer.disconnect()
}

run().catch(e => {
  console.error(e)
  process.exit(1)
})
