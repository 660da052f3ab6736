'use strict'

// Makes the README's screenshot, docs/console.png: the messages page of a topic with a
// few JSON records, the live tail running and two records that arrived through it.
// Not a test: run it by hand after a visible change to the messages page
// (`node readme-screenshot.js` here, with `sluice` built).

const path = require('node:path')
const { Sluice } = require('./lib/sluice')
const { launch, newContext } = require('./lib/browser')

const OUT = path.resolve(__dirname, '..', '..', 'docs', 'console.png')

function order(i) {
  return {
    key: `customer-${i % 7}`,
    value: JSON.stringify({ order: 1000 + i, customer: i % 7, total: (i * 3.5).toFixed(2), status: 'paid' }),
    headers: { source: 'web', 'trace-id': `t-${1000 + i}` },
  }
}

async function main() {
  const sluice = await new Sluice().start()
  const browser = await launch()
  try {
    const kafka = sluice.kafkaClient('readme')
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 3 }], waitForLeaders: true })
    await admin.disconnect()
    const producer = kafka.producer()
    await producer.connect()
    for (let i = 0; i < 40; i += 4) {
      await producer.send({ topic: 'orders', messages: [0, 1, 2, 3].map(j => order(i + j)) })
    }

    const context = await newContext(browser, { colorScheme: 'light', viewport: { width: 1280, height: 800 } })
    const page = await context.newPage()
    await page.goto(`${sluice.http}/ui/topics/orders/messages?n=4`)
    await page.click('[data-action=tail-start]')
    await page.waitForFunction(() => /^Live/.test(document.querySelector('.tail-status').textContent))
    await producer.send({ topic: 'orders', messages: [order(40), order(41)] })
    await page.waitForFunction(() => document.querySelectorAll('.tail-rows tr').length >= 2)
    await producer.disconnect()
    // From the top of the page to the end of the live tail (box measured unscrolled).
    await page.evaluate(() => window.scrollTo(0, 0))
    const tail = await page.locator('.tail-rows').boundingBox()
    await page.screenshot({ path: OUT, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(tail.y + tail.height + 16) } })
    console.log(`wrote ${OUT}`)
    await context.close()
  } finally {
    await browser.close()
    await sluice.stop()
  }
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
