'use strict'

// Debian's chromium driven by playwright-core (playwright's own browser download cannot
// work here), a watcher that collects everything a page must not have (console errors,
// failed requests, CSP violations), axe-core, and the artifacts folder for screenshots.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { chromium } = require('playwright-core')

const ARTIFACTS = process.env.CONSOLE_ARTIFACTS || path.join(__dirname, '..', 'artifacts')
fs.mkdirSync(ARTIFACTS, { recursive: true })

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`]).toString().trim()
    } catch (_) {}
  }
  throw new Error('no chromium found: install Debian\'s `chromium` package (scripts/install-test-deps.sh does) or set CHROMIUM')
}

/** Launches headless chromium with the flags that keep it off the (closed) network. */
function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  })
}

/**
 * Watches a page: console errors, uncaught exceptions, failed requests (network errors
 * and HTTP >= 400 unless `allowStatus` lets one through), CSP violations; and the bytes and
 * requests of each navigation.
 */
function watch(page, { allowStatus = () => false } = {}) {
  const problems = []
  const requests = []
  page.on('console', m => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`) })
  page.on('pageerror', e => problems.push(`page error: ${e.message}`))
  page.on('requestfailed', r => {
    // A page left while its event stream is open aborts the stream: not a failure.
    const text = r.failure() && r.failure().errorText
    if (text === 'net::ERR_ABORTED' && r.resourceType() === 'eventsource') return
    problems.push(`request failed: ${r.url()} ${text}`)
  })
  page.on('response', r => {
    if (r.status() >= 400 && !allowStatus(r)) problems.push(`HTTP ${r.status()}: ${r.url()}`)
  })
  page.on('requestfinished', async r => {
    try {
      const sizes = await r.sizes()
      requests.push({ url: r.url(), type: r.resourceType(), bytes: sizes.responseBodySize + sizes.responseHeadersSize })
    } catch (_) {}
  })
  return {
    problems,
    requests,
    /** CSP violations the page saw (the listener is installed before any script runs). */
    async cspViolations() {
      return page.evaluate(() => window.__cspViolations || [])
    },
    reset() {
      problems.length = 0
      requests.length = 0
    },
  }
}

/** A context whose pages record CSP violations in `window.__cspViolations`. */
async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options })
  if (options.javaScriptEnabled !== false) {
    await context.addInitScript(() => {
      window.__cspViolations = []
      document.addEventListener('securitypolicyviolation', e => {
        window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`)
      })
    })
  }
  return context
}

const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8')

/** axe-core's serious and critical violations on the page (evaluated, not injected as a
 * script tag, so the page's CSP stays as it is). */
async function seriousA11yViolations(page) {
  await page.evaluate(AXE_SOURCE)
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }))
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`)
}

module.exports = { launch, watch, newContext, seriousA11yViolations, ARTIFACTS }
