// The addon as a Node program sees it: promises that never block the event loop, errors with stable
// codes and model-safe messages, host names only.
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'

const require = createRequire(import.meta.url)
const api = require('../api.js')

let home, silentServer

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-api-'))
  // A server that accepts TCP and never speaks SSH: the connect must time out without blocking JS.
  silentServer = net.createServer(() => {})
  await new Promise((resolve) => silentServer.listen(0, '127.0.0.1', resolve))
  const { port } = silentServer.address()
  await mkdir(path.join(home, '.ssh'), { recursive: true })
  await writeFile(
    path.join(home, '.ssh', 'config'),
    `Host silent-box\n  HostName 127.0.0.1\n  Port ${port}\n  User nobody-here\n  ConnectTimeout 2\n`,
  )
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  await writeFile(
    path.join(home, 'config', 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { silent: 'silent-box', beta: 'deploy@10.9.8.7:2200' } }),
  )
  Object.assign(process.env, { HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') })
  delete process.env.OPENCODE_CONFIG_DIR
  delete process.env.SSH_AUTH_SOCK
})

after(() => silentServer.close())

const session = JSON.stringify({
  info: { id: 'ses_api', directory: '/tmp' },
  messages: [
    {
      info: { id: 'msg_1', sessionID: 'ses_api', role: 'user' },
      parts: [{ id: 'prt_1', sessionID: 'ses_api', messageID: 'msg_1', type: 'text', text: 'hi' }],
    },
  ],
})

test('listHosts returns names only, sorted', async () => {
  assert.deepEqual(await api.listHosts(null, { hosts: { zeta: 'z@example.invalid' } }), [
    'beta',
    'silent',
    'zeta',
  ])
})

test('an unknown host rejects with code UNKNOWN_HOST and lists names', async () => {
  await assert.rejects(
    api.remoteLogin({ sessionId: 'ses_api', host: 'gamma', exportJson: session }),
    (err) => {
      assert.equal(err.code, 'UNKNOWN_HOST')
      assert.equal(err.message, "Unknown host 'gamma'. Configured hosts: beta, silent.")
      return true
    },
  )
})

test('a bad host entry is refused alone, naming the file and field, not the address', async () => {
  const file = path.join(home, 'config', 'opencode', 'hosts.jsonc')
  await writeFile(file, '{ "hosts": { "bad": { "host": "x@10.1.1.1", "port": "twenty-two" } } }')
  try {
    const names = await api.listHosts(null, null)
    assert.ok(!names.includes('bad'), names.join(', '))
    assert.ok(names.includes('beta'), 'the other hosts are still offered')
    await assert.rejects(
      api.remoteLogin({ sessionId: 'ses_api', host: 'bad', exportJson: session }),
      (err) => {
        assert.equal(err.code, 'CONFIG_INVALID')
        assert.match(err.message, /~\/config\/opencode\/hosts\.jsonc/)
        assert.match(err.message, /hosts\.bad\.port/)
        assert.ok(!err.message.includes('10.1.1.1'), err.message)
        return true
      },
    )
  } finally {
    await writeFile(file, '{}')
  }
})

test('remoteLogin runs off the JS thread: timers keep firing while SSH waits', async () => {
  let ticks = 0
  let worstGap = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    worstGap = Math.max(worstGap, now - last)
    last = now
    ticks++
  }, 10)
  const started = performance.now()
  try {
    await assert.rejects(
      api.remoteLogin({ sessionId: 'ses_api', host: 'silent', exportJson: session }),
      (err) => {
        assert.equal(err.code, 'HOST_UNREACHABLE')
        assert.equal(
          err.message,
          "Host 'silent' is unreachable. Check that it is up and that `ssh silent` works, then retry.",
        )
        return true
      },
    )
  } finally {
    clearInterval(timer)
  }
  const elapsed = performance.now() - started
  assert.ok(elapsed >= 1900, `waited for the 2 s connect timeout (${elapsed} ms)`)
  assert.ok(ticks >= elapsed / 10 / 2, `timers fired ${ticks} times in ${elapsed} ms`)
  assert.ok(worstGap < 200, `the event loop stalled for ${worstGap} ms`)
})

test('an invalid mode is refused', async () => {
  await assert.rejects(api.remoteLogin({ sessionId: 'ses_api', host: 'silent', mode: 'sideways' }), {
    code: 'INVALID_ARGUMENT',
  })
})

test('cancelRemoteLogin stops a call in flight', async () => {
  const call = api.remoteLogin({ sessionId: 'ses_api', host: 'silent', exportJson: session, requestId: 'r1' })
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(api.cancelRemoteLogin('r1'), true)
  await assert.rejects(call, { code: 'CANCELLED' })
  assert.equal(api.cancelRemoteLogin('r1'), false)
})

test('configSchema describes both config files', () => {
  const hosts = api.configSchema('hosts')
  assert.equal(hosts.$schema, 'https://json-schema.org/draft/2020-12/schema')
  assert.ok(hosts.properties.hosts)
  assert.ok(api.configSchema('plugin-options').properties.hosts)
})
