'use strict'

// What people do in the console, in a real browser, checked with kafkajs on the other
// side: create a topic and write to it, produce from the UI and consume it, watch a
// kafkajs write arrive in the live tail, reset a stopped group to a time and resume;
// keyboard use; the topic list and topic creation without JavaScript; and the refusals
// (typed-name delete, a form posted from another origin).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { Sluice } = require('../lib/sluice')
const { launch, watch, newContext, ARTIFACTS } = require('../lib/browser')

let sluice, browser, kafka
const measured = {}

before(async () => {
  sluice = await new Sluice().start()
  browser = await launch()
  kafka = sluice.kafkaClient()
})

after(async () => {
  fs.writeFileSync(path.join(ARTIFACTS, 'flows.json'), JSON.stringify(measured, null, 2) + '\n')
  if (browser) await browser.close()
  if (sluice) await sluice.stop()
})

async function createTopicInUi(page, name, partitions) {
  await page.goto(`${sluice.http}/ui/topics`)
  await page.fill('#name', name)
  await page.fill('#partitions', String(partitions))
  await Promise.all([page.waitForURL(`**/ui/topics/${name}?notice=created`), page.getByRole('button', { name: 'Create topic', exact: true }).click()])
}

/** Consumes `count` messages of `topic` from the beginning with a fresh kafkajs group. */
async function consume(topic, count, groupId) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} messages`)), 20_000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, ...message })
        if (got.length >= count) { clearTimeout(timer); resolve() }
      },
    }).catch(reject)
  })
  await consumer.disconnect()
  return got
}

test('a topic created in the UI takes kafkajs writes, shown on its messages page', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await createTopicInUi(page, 'ui-made', 2)
  assert.match(await page.textContent('main'), /Topic created\./)
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: 'ui-made', messages: [{ key: 'k', value: 'from kafkajs', headers: { h: 'v' } }] })
  await producer.disconnect()
  await page.goto(`${sluice.http}/ui/topics/ui-made/messages`)
  const row = page.locator('table.records tbody.result-rows tr', { hasText: 'from kafkajs' })
  await row.waitFor()
  assert.match(await row.textContent(), /h=v/)
  // Expanding a record loads it in place.
  await row.locator('summary').click()
  await row.locator('.record pre.text').first().waitFor()
  assert.equal((await row.locator('.record pre.text').first().textContent()), 'k')
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('a record produced in the UI reaches a kafkajs consumer with its key, value and headers', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await createTopicInUi(page, 'ui-produce', 3)
  await page.goto(`${sluice.http}/ui/topics/ui-produce/messages`)
  await page.selectOption('#p-partition', '2')
  await page.fill('#p-key', 'order-7')
  await page.fill('#p-value', '{"total": 42}')
  await page.fill('#p-headers', 'source: console\ntrace: abc')
  await Promise.all([page.waitForURL(/notice=produced/), page.getByRole('button', { name: 'Produce', exact: true }).click()])
  assert.match(page.url(), /partition=2&start=offset&offset=0&notice=produced$/)
  assert.match(await page.textContent('tr.highlight'), /order-7/)
  const [message] = await consume('ui-produce', 1, 'ui-produce-reader')
  assert.equal(message.partition, 2)
  assert.equal(message.key.toString(), 'order-7')
  assert.equal(message.value.toString(), '{"total": 42}')
  assert.deepEqual(
    Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, v.toString()])),
    { source: 'console', trace: 'abc' }
  )
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('kafkajs writes appear in the live tail (latency recorded)', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await createTopicInUi(page, 'tailed', 2)
  await page.goto(`${sluice.http}/ui/topics/tailed/messages`)
  await page.click('[data-action=tail-start]')
  await page.waitForFunction(() => /^Live/.test(document.querySelector('.tail-status').textContent))
  const producer = kafka.producer()
  await producer.connect()
  const samples = []
  for (let i = 0; i < 20; i++) {
    const marker = `tail-sample-${i}`
    const sent = Date.now()
    await producer.send({ topic: 'tailed', acks: 1, messages: [{ value: marker }] })
    await page.waitForFunction(m => document.querySelector('.tail-rows').textContent.includes(m), marker, { polling: 5, timeout: 10_000 })
    samples.push(Date.now() - sent)
  }
  await producer.disconnect()
  samples.sort((a, b) => a - b)
  measured.tailLatencyMs = { samples, p50: samples[9], p95: samples[18] }
  // Newest first, every sample there once.
  const rows = await page.locator('.tail-rows tr').allTextContents()
  assert.equal(rows.length, 20)
  assert.match(rows[0], /tail-sample-19/)
  // Pause keeps the rows; a record written while paused comes after resuming.
  await page.click('[data-action=tail-pause]')
  assert.match(await page.textContent('.tail-status'), /^Paused: 20 records kept/)
  const again = kafka.producer()
  await again.connect()
  await again.send({ topic: 'tailed', messages: [{ value: 'while-paused' }] })
  await again.disconnect()
  await page.click('[data-action=tail-start]')
  await page.waitForFunction(() => document.querySelector('.tail-rows').textContent.includes('while-paused'))
  assert.equal(await page.locator('.tail-rows tr').count(), 21)
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('a filter streams its progress and its matches', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await createTopicInUi(page, 'searched', 1)
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 500; i++) messages.push({ value: JSON.stringify({ n: i, kind: i % 50 === 0 ? 'rare' : 'common' }) })
  await producer.send({ topic: 'searched', messages })
  await producer.disconnect()
  await page.goto(`${sluice.http}/ui/topics/searched/messages?start=oldest`)
  await page.selectOption('#field', 'json')
  await page.fill('#fname', '/kind')
  await page.selectOption('#op', 'eq')
  await page.fill('#q', 'rare')
  await page.getByRole('button', { name: 'Show', exact: true }).click()
  await page.waitForFunction(() => /^Done: 10 matches in 500 records/.test(document.querySelector('.search-progress').textContent))
  assert.equal(await page.locator('tbody.result-rows tr').count(), 10)
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('a stopped group reset to a time resumes where expected', async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: 'resettable', numPartitions: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const base = Date.UTC(2026, 0, 1, 12, 0, 0)
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({
    topic: 'resettable',
    messages: Array.from({ length: 10 }, (_, i) => ({ value: `m${i}`, timestamp: String(base + i * 60_000) })),
  })
  await producer.disconnect()
  // The group reads everything, commits, and stops.
  const read = await consume('resettable', 10, 'resetters')
  assert.equal(read.length, 10)

  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await page.goto(`${sluice.http}/ui/groups/resetters`)
  assert.match(await page.textContent('dl.facts'), /StateEmpty/)
  await page.selectOption('#reset-target', 'timestamp')
  await page.fill('#reset-value', '2026-01-01T12:05:00Z')
  await page.getByRole('button', { name: 'Preview', exact: true }).click()
  const preview = page.locator('section', { hasText: 'Preview: nothing is changed yet' })
  await preview.waitFor()
  assert.match(await preview.locator('tbody tr').textContent(), /resettable0105/)
  await Promise.all([page.waitForURL(/notice=reset/), page.getByRole('button', { name: 'Apply this reset', exact: true }).click()])
  const resumed = await consume('resettable', 1, 'resetters')
  assert.equal(resumed[0].offset, '5')
  assert.equal(resumed[0].value.toString(), 'm5')
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('keyboard: skip link, navigation and a form with Tab and Enter', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page)
  await page.goto(`${sluice.http}/ui/`)
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content')
  await page.keyboard.press('Tab') // brand
  for (const label of ['Overview', 'Topics']) {
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate(() => document.activeElement.textContent), label)
  }
  await Promise.all([page.waitForURL('**/ui/topics'), page.keyboard.press('Enter')])
  await page.focus('#name')
  await page.keyboard.type('typed-in')
  for (const id of ['partitions', 'replication_factor', 'configs']) {
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate(() => document.activeElement.id), id)
  }
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Create topic')
  await Promise.all([page.waitForURL('**/ui/topics/typed-in?notice=created'), page.keyboard.press('Enter')])
  assert.match(await page.textContent('dl.facts'), /Partitions1Replication factor1/)
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('without JavaScript the topic list renders and a topic can be created', async () => {
  const context = await newContext(browser, { javaScriptEnabled: false })
  const page = await context.newPage()
  const watcher = watch(page)
  await page.goto(`${sluice.http}/ui/topics`)
  assert.ok(await page.locator('table.topics tbody tr').count() > 0)
  await page.fill('#name', 'no-js')
  await page.fill('#configs', 'retention.ms=60000')
  await Promise.all([page.waitForURL('**/ui/topics/no-js?notice=created'), page.getByRole('button', { name: 'Create topic', exact: true }).click()])
  assert.match(await page.textContent('main'), /Topic created\./)
  assert.match(await page.textContent('tr.override'), /retention\.ms60000topic/)
  await page.screenshot({ path: path.join(ARTIFACTS, 'no-js-topic.png'), fullPage: true })
  assert.deepEqual(watcher.problems, [])
  await context.close()
})

test('deleting a topic takes its name typed; chromium sends Sec-Fetch-Site', async () => {
  const context = await newContext(browser)
  const page = await context.newPage()
  const watcher = watch(page, { allowStatus: r => r.status() === 400 && r.request().method() === 'POST' })
  await createTopicInUi(page, 'doomed', 1)
  const posted = []
  page.on('request', async r => { if (r.method() === 'POST') posted.push((await r.allHeaders())['sec-fetch-site']) })
  await page.fill('#confirm-name', 'doomed-not')
  await page.getByRole('button', { name: 'Delete topic', exact: true }).click()
  await page.waitForSelector('p.error')
  assert.match(await page.textContent('p.error'), /nothing was deleted/)
  await page.fill('#confirm-name', 'doomed')
  await Promise.all([page.waitForURL('**/ui/topics?notice=deleted'), page.getByRole('button', { name: 'Delete topic', exact: true }).click()])
  assert.deepEqual(posted, ['same-origin', 'same-origin'])
  assert.equal((await page.goto(`${sluice.http}/ui/topics/doomed`, { waitUntil: 'load' })).status(), 404)
  // The refused delete (400) and the deleted topic's page (404) are the only errors.
  assert.deepEqual(watcher.problems.sort(), [
    'HTTP 404: ' + sluice.http + '/ui/topics/doomed',
    'console error: Failed to load resource: the server responded with a status of 400 (Bad Request)',
    'console error: Failed to load resource: the server responded with a status of 404 (Not Found)',
  ])
  await context.close()
})

test('a form posted from another origin is refused', async () => {
  // Another origin (a second port) serving a page that posts to the console.
  const evil = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/html')
    res.end(`<!doctype html><title>x</title><form id=f method=post action="${sluice.http}/ui/topics">
      <input name=name value=planted><input name=partitions value=1><input name=replication_factor value=1>
      </form><script>document.getElementById('f').submit()</script>`)
  })
  await new Promise(resolve => evil.listen(0, '127.0.0.1', resolve))
  const context = await newContext(browser)
  const page = await context.newPage()
  const refused = page.waitForResponse(r => r.url() === `${sluice.http}/ui/topics` && r.request().method() === 'POST')
  await page.goto(`http://127.0.0.1:${evil.address().port}/`)
  const response = await refused
  assert.equal(response.status(), 403)
  assert.equal((await response.request().allHeaders())['sec-fetch-site'], 'same-site')
  assert.equal(await response.text(), 'cross-site request refused (Sec-Fetch-Site)\n')
  evil.close()
  const list = await (await fetch(`${sluice.http}/ui/topics`)).text()
  assert.ok(!list.includes('>planted</a>'))
  await context.close()
})

test('read-only mode shows no control that changes anything', async () => {
  const readOnly = await new Sluice(['--console', 'read-only']).start()
  try {
    const context = await newContext(browser)
    const page = await context.newPage()
    const watcher = watch(page)
    for (const url of ['/ui/', '/ui/topics', '/ui/groups', '/ui/brokers']) {
      await page.goto(readOnly.http + url)
      assert.equal(await page.locator('form[method=post]').count(), 0, url)
      assert.equal(await page.locator('.badge').textContent(), 'read-only')
    }
    assert.deepEqual(watcher.problems, [])
    await context.close()
  } finally {
    await readOnly.stop()
  }
})
