'use strict'

// Every console page in a real browser, light and dark: no console error, no failed
// request, no CSP violation, no serious accessibility violation; a screenshot of each
// (artifacts/), and what each page costs (bytes, requests, DOMContentLoaded) recorded in
// artifacts/budgets.json.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Sluice } = require('../lib/sluice')
const { launch, watch, newContext, seriousA11yViolations, ARTIFACTS } = require('../lib/browser')

let sluice, browser, openTransaction
const budgets = {}

before(async () => {
  sluice = await new Sluice().start()
  browser = await launch()
  const kafka = sluice.kafkaClient()
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 3 }], waitForLeaders: true })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 120; i++) {
    messages.push({
      key: `customer-${i % 7}`,
      value: JSON.stringify({ order: i, customer: { id: i % 7, name: `Customer ${i % 7}` }, total: (i * 3.5).toFixed(2) }),
      headers: { source: 'web', 'trace-id': `t-${i}` },
    })
  }
  await producer.send({ topic: 'orders', messages })
  await producer.disconnect()
  // An idempotent producer, and a transactional one with its transaction left open.
  const idempotent = kafka.producer({ idempotent: true })
  await idempotent.connect()
  await idempotent.send({ topic: 'orders', messages: [{ key: 'k', value: 'idempotent' }] })
  await idempotent.disconnect()
  const transactional = kafka.producer({ transactionalId: 'checkout', maxInFlightRequests: 1, idempotent: true, transactionTimeout: 600_000 })
  await transactional.connect()
  const txn = await transactional.transaction()
  await txn.send({ topic: 'orders', messages: [{ key: 'k', value: 'in a transaction' }] })
  openTransaction = transactional
  // A group that read part of the topic and stopped: it has lag.
  const admin2 = kafka.admin()
  await admin2.connect()
  await admin2.setOffsets({ groupId: 'billing', topic: 'orders', partitions: [0, 1, 2].map(p => ({ partition: p, offset: '10' })) })
  await admin2.disconnect()
})

after(async () => {
  fs.writeFileSync(path.join(ARTIFACTS, 'budgets.json'), JSON.stringify(budgets, null, 2) + '\n')
  if (openTransaction) await openTransaction.disconnect().catch(() => {})
  if (browser) await browser.close()
  if (sluice) await sluice.stop()
})

const PAGES = [
  ['overview', '/ui/', true],
  ['topics', '/ui/topics', false],
  ['topic', '/ui/topics/orders', true],
  ['messages', '/ui/topics/orders/messages', false],
  ['record', '/ui/topics/orders/messages/record?partition=0&offset=0', false],
  ['groups', '/ui/groups', false],
  ['group', '/ui/groups/billing', false],
  ['transactions', '/ui/transactions', false],
  ['brokers', '/ui/brokers', false],
]

for (const [name, url, charts] of PAGES) {
  for (const colorScheme of ['light', 'dark']) {
    test(`${name} (${colorScheme}) loads clean and accessible`, async () => {
      const context = await newContext(browser, { colorScheme })
      const page = await context.newPage()
      const watcher = watch(page)
      let requestCount = 0
      page.on('request', () => { requestCount++ })
      const response = await page.goto(sluice.http + url, { waitUntil: 'load' })
      assert.equal(response.status(), 200)
      if (name === 'transactions') {
        assert.match(await page.textContent('main'), /checkout\d+\d+Ongoing/)
      }
      if (charts) await page.waitForSelector('figure.chart.drawn', { timeout: 10_000 })
      // Let the page's event streams deliver their first events.
      await page.waitForLoadState('domcontentloaded')
      assert.deepEqual(await watcher.cspViolations(), [], 'CSP violations')
      assert.deepEqual(await seriousA11yViolations(page), [], 'accessibility')
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${colorScheme}.png`), fullPage: true })
      assert.deepEqual(watcher.problems, [], 'console errors and failed requests')
      if (colorScheme === 'light') {
        const dcl = await page.evaluate(() => {
          const nav = performance.getEntriesByType('navigation')[0]
          return Math.round(nav.domContentLoadedEventEnd)
        })
        const bytes = watcher.requests.reduce((sum, r) => sum + r.bytes, 0)
        const origins = new Set(watcher.requests.map(r => new URL(r.url).origin))
        budgets[name] = { url, charts, requests: requestCount, bytes, domContentLoadedMs: dcl, origins: [...origins] }
        assert.deepEqual([...origins], [sluice.http], 'no other origins')
        assert.ok(requestCount <= 6, `${requestCount} requests`)
      }
      await context.close()
    })
  }
}
