// Create the `Temperature` topic with 3 partitions and show its metadata.
//
//   node temperature-admin.js
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const kafka = new Kafka({ clientId: 'my-app', brokers })

const admin = kafka.admin()

const run = async () => {
  await admin.connect()
  const created = await admin.createTopics({
    topics: [{ topic: 'Temperature', numPartitions: 3, replicationFactor: 1 }],
  })
  // kafkajs resolves with false when the topic already exists.
  console.log(created ? 'Created topic Temperature' : 'Topic Temperature already exists')

  const metadata = await admin.fetchTopicMetadata({ topics: ['Temperature'] })
  for (const topic of metadata.topics) {
    console.log(`Topic ${topic.name} has ${topic.partitions.length} partitions`)
    const partitions = [...topic.partitions].sort((a, b) => a.partitionId - b.partitionId)
    for (const p of partitions) {
      console.log(
        `  partition ${p.partitionId}: leader ${p.leader}, replicas [${p.replicas}], isr [${p.isr}]`
      )
    }
  }
  await admin.disconnect()
}

run().catch(e => {
  console.error(e)
  process.exit(1)
})
