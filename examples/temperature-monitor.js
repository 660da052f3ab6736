// Temperature monitoring, part 2: watch the `Temperature` topic and raise an alert for any
// reading above a threshold (TEMPERATURE_ALERT_CELSIUS, default 30).
//
//   node temperature-monitor.js              # runs until Ctrl-C
//   MAX_MESSAGES=6 node temperature-monitor.js   # stops after six readings
const { Kafka } = require('kafkajs')

const brokers = (process.env.KAFKA_BROKERS || 'localhost:9092').split(',')
const maxMessages = Number(process.env.MAX_MESSAGES || 0)
const threshold = Number(process.env.TEMPERATURE_ALERT_CELSIUS || 30)
const kafka = new Kafka({ clientId: 'my-app', brokers })

const consumer = kafka.consumer({ groupId: 'temperature-monitor' })

let received = 0
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await consumer.disconnect()
}

const run = async () => {
  await consumer.connect()
  await consumer.subscribe({ topic: 'Temperature', fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const { sensor, celsius } = JSON.parse(message.value.toString())
      const unit = message.headers.unit ? message.headers.unit.toString() : 'celsius'
      console.log(
        `Reading ${sensor} (key ${message.key}): ${celsius} ${unit} [partition ${partition}, offset ${message.offset}]`
      )
      if (celsius > threshold) {
        console.log(`ALERT ${sensor}: ${celsius} °C is above ${threshold} °C`)
      }
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
