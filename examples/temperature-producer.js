// Temperature monitoring, part 1: sensors report readings to the `Temperature` topic.
// Each reading is keyed by its sensor id, so one sensor's readings stay on one partition
// and in order. Run temperature-admin.js first to get 3 partitions.
//
//   node temperature-producer.js
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const kafka = new Kafka({ clientId: 'my-app', brokers })

const producer = kafka.producer()

const readings = [
  { sensor: 'sensor-1', celsius: 21.5 },
  { sensor: 'sensor-2', celsius: 23.0 },
  { sensor: 'sensor-3', celsius: 31.2 },
  { sensor: 'sensor-1', celsius: 22.1 },
  { sensor: 'sensor-2', celsius: 35.4 },
  { sensor: 'sensor-3', celsius: 19.8 },
]

const run = async () => {
  await producer.connect()
  const results = await producer.send({
    topic: 'Temperature',
    messages: readings.map(reading => ({
      key: reading.sensor,
      value: JSON.stringify(reading),
      headers: { unit: 'celsius' },
    })),
  })
  const partitions = results.map(r => r.partition).sort((a, b) => a - b)
  console.log(`Sent ${readings.length} readings to Temperature (partitions ${partitions.join(', ')})`)
  await producer.disconnect()
}

run().catch(e => {
  console.error(e)
  process.exit(1)
})
