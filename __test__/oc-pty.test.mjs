// Differential check of the stub's OpenCode `/pty` routes against the real `opencode serve` (1.18.33):
// the same requests to both, answers compared byte for byte where nothing varies (errors, key order)
// and field by field where ids, pids and paths must differ. The stub is this checkout's debug build,
// talked to on its Unix socket; OpenCode runs in temporary HOME/XDG dirs on an ephemeral port.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { makeOpencodeHome, repoRoot, startServe } from './harness/opencode.mjs'
import { exec, onExit } from './harness/proc.mjs'

const WS = 'wdiff'

/** One HTTP request; `target` is `{url}` (OpenCode) or `{socket, token}` (the stub). */
function request(target, method, p, { body, headers = {}, upgrade = false } = {}) {
  return new Promise((resolve, reject) => {
    const base = target.socket
      ? { socketPath: target.socket, path: `/v1/workspaces/${WS}/oc${p}` }
      : { host: '127.0.0.1', port: new URL(target.url).port, path: p }
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
    const req = http.request({
      ...base,
      method,
      headers: {
        ...(data === undefined
          ? {}
          : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }),
        ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
        ...headers,
      },
    })
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${p} timed out`)))
    req.on('error', reject)
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, text, json: parse(text) }))
    })
    if (upgrade) req.on('upgrade', (res, socket, head) => resolve({ status: 101, socket, head }))
    req.end(data)
  })
}

function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A minimal RFC 6455 client on an upgraded socket: frames in, masked text frames out. */
function wsClient(socket, head) {
  let buf = head ?? Buffer.alloc(0)
  const frames = []
  let wake = () => {}
  const take = () => {
    for (;;) {
      if (buf.length < 2) break
      const op = buf[0] & 0x0f
      let len = buf[1] & 0x7f
      let at = 2
      if (len === 126) {
        if (buf.length < 4) break
        len = buf.readUInt16BE(2)
        at = 4
      } else if (len === 127) {
        if (buf.length < 10) break
        len = Number(buf.readBigUInt64BE(2))
        at = 10
      }
      if (buf.length < at + len) break
      const payload = buf.subarray(at, at + len)
      buf = buf.subarray(at + len)
      if (op === 1) frames.push({ type: 'text', data: payload.toString('utf8') })
      else if (op === 2) frames.push({ type: 'binary', data: Buffer.from(payload) })
      else if (op === 8)
        frames.push({
          type: 'close',
          code: len >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString(),
        })
    }
    wake()
  }
  // The server's first frames may arrive with the 101 response (`head`).
  take()
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d])
    take()
  })
  socket.on('close', () => {
    frames.push({ type: 'eof' })
    wake()
  })
  return {
    frames,
    send(text) {
      const payload = Buffer.from(text)
      const mask = randomBytes(4)
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]))
    },
    async until(pred, what) {
      const deadline = Date.now() + 20_000
      while (!pred(frames)) {
        if (Date.now() > deadline) throw new Error(`waiting for ${what}: ${JSON.stringify(frames)}`)
        await new Promise((r) => {
          wake = r
          setTimeout(r, 100)
        })
      }
    },
    close: () => socket.destroy(),
  }
}

async function openTerminal(target, id, query) {
  const res = await request(target, 'GET', `/pty/${id}/connect?${query}`, {
    upgrade: true,
    headers: {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
    },
  })
  assert.equal(res.status, 101, `connect ${query}: ${res.status} ${res.text}`)
  return wsClient(res.socket, res.head)
}

/** Replace what must differ between the two servers (ids, pids, the working directory). */
function normalize(info, root) {
  if (!info || typeof info !== 'object' || !info.id) return info
  const id = info.id
  assert.match(id, /^pty_[0-9a-f]{12}[0-9A-Za-z]{14}$/)
  const title = info.title === `Terminal ${id.slice(-4)}` ? 'Terminal <id>' : info.title
  assert.equal(typeof info.pid, 'number')
  return { ...info, id: '<id>', title, pid: '<pid>', cwd: info.cwd === root ? '<root>' : info.cwd }
}

/** Both answers: same status, same keys in the same order, same values once normalized. */
function same(a, b, what) {
  assert.equal(
    b.status,
    a.status,
    `${what}: status (opencode ${a.status} ${a.text}; stub ${b.status} ${b.text})`,
  )
  if (a.json === undefined) {
    assert.equal(b.text, a.text, `${what}: body`)
    return
  }
  // Ids in messages differ too.
  const n = (r) =>
    JSON.stringify(
      Array.isArray(r.json) ? r.json.map((x) => normalize(x, r.root)) : normalize(r.json, r.root),
    ).replace(/pty_[0-9a-f]{12}[0-9A-Za-z]{14}/g, '<id>')
  assert.equal(n(b), n(a), `${what}: body`)
}

describe('the stub answers /pty as OpenCode 1.18.33 does', { timeout: 240_000 }, () => {
  let oc
  let stub
  let dir
  const both = async (method, p, opts) => {
    const a = await request(oc, method, p, opts)
    const b = await request(stub, method, p, opts)
    return [
      { ...a, root: oc.root },
      { ...b, root: stub.root },
    ]
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'oc-pty-'))
    const home = await makeOpencodeHome(path.join(dir, 'oc'), { llm: 'http://127.0.0.1:9/v1' })
    const serve = await startServe(home.env, home.projectDir)
    oc = { url: serve.url, root: home.projectDir, stop: () => serve.stop() }

    await exec('cargo', ['build', '-q', '-p', 'opencode-remote-stub'], { cwd: repoRoot, timeoutMs: 600_000 })
    const stubHome = path.join(dir, 'stub')
    const root = path.join(dir, 'root')
    await mkdir(path.join(stubHome, 'run'), { recursive: true })
    await mkdir(root, { recursive: true })
    const token = randomBytes(24).toString('hex')
    await writeFile(path.join(stubHome, 'run', 'stub.token'), token, { mode: 0o600 })
    // The same PATH as OpenCode's, so both find the same shells.
    const child = spawn(
      path.join(repoRoot, 'target', 'debug', 'opencode-remote-stub'),
      ['serve', '--home', stubHome],
      {
        env: { ...home.env, HOME: home.home },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
    const unregister = onExit(() => child.kill('SIGKILL'))
    const line = await new Promise((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        if (out.includes('\n')) resolve(out.split('\n')[0])
      })
      child.once('exit', (code) => reject(new Error(`stub exited ${code}`)))
    })
    const info = JSON.parse(line)
    stub = {
      socket: info.socket,
      token,
      root,
      stop: () => {
        unregister()
        child.kill('SIGKILL')
      },
    }
    const reg = await new Promise((resolve, reject) => {
      const req = http.request({
        socketPath: info.socket,
        path: '/v1/workspaces',
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      })
      req.on('response', (res) => resolve(res.statusCode))
      req.on('error', reject)
      req.end(JSON.stringify({ id: WS, root }))
    })
    assert.equal(reg, 200)
  })

  after(async () => {
    await oc?.stop()
    stub?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  test('shells, list, create, get, update, remove and their errors', async () => {
    same(...(await both('GET', '/pty/shells')), 'shells')
    same(...(await both('GET', '/pty')), 'empty list')

    const [a, b] = await both('POST', '/pty', { body: { command: '/bin/sh', title: 'mine', bogus: 1 } })
    same(a, b, 'create with a title')
    const ids = [[a.json.id, b.json.id]]
    const [c, d] = await both('POST', '/pty', { body: { command: '/bin/sh', args: ['-i'], env: { A: 'b' } } })
    same(c, d, 'create with args (and -l appended)')
    ids.push([c.json.id, d.json.id])
    same(...(await both('POST', '/pty', { body: { args: 'x' } })), 'args not an array')
    same(...(await both('POST', '/pty', { body: { env: { A: 1 } } })), 'env value not a string')
    same(...(await both('POST', '/pty', { body: { args: ['a', 2] } })), 'an arg not a string')
    same(...(await both('POST', '/pty', { body: { command: null } })), 'command null')
    same(...(await both('POST', '/pty', { body: [] })), 'body an array')
    const [g, h] = await both('POST', '/pty', { body: '' })
    assert.equal(
      h.status,
      g.status,
      `an empty body: opencode ${g.status} ${g.text}; stub ${h.status} ${h.text}`,
    )
    const [e, f] = await both('POST', '/pty', { body: 'not json' })
    assert.equal(f.status, e.status)
    assert.deepEqual(Object.keys(f.json.data), Object.keys(e.json.data))
    assert.equal(f.json.name, e.json.name)

    same(...(await both('GET', '/pty')), 'list')
    const pair = async (method, tail, opts) => {
      const [[x, y]] = ids
      const a = await request(oc, method, `/pty/${x}${tail}`, opts)
      const b = await request(stub, method, `/pty/${y}${tail}`, opts)
      return [
        { ...a, root: oc.root },
        { ...b, root: stub.root },
      ]
    }
    same(...(await pair('GET', '')), 'get')
    same(...(await pair('PUT', '', { body: { title: 'new', size: { rows: 10, cols: 20 } } })), 'update')
    same(...(await pair('PUT', '', { body: { title: '' } })), 'update with an empty title')
    same(...(await pair('PUT', '', { body: {} })), 'update with nothing')
    same(...(await pair('PUT', '', { body: { size: { rows: 0, cols: 20 } } })), 'rows 0')
    same(...(await pair('PUT', '', { body: { size: { rows: 1.5, cols: 20 } } })), 'rows 1.5')
    same(...(await pair('PUT', '', { body: { size: { rows: 5 } } })), 'cols missing')
    same(...(await pair('PUT', '', { body: { size: { rows: '5', cols: 5 } } })), 'rows a string')
    same(...(await pair('PUT', '', { body: { title: 5 } })), 'title a number')
    same(...(await pair('PUT', '', { body: { size: null } })), 'size null')
    same(...(await pair('POST', '/connect-token')), 'connect-token without its header')
    const [t1, t2] = await pair('POST', '/connect-token', { headers: { 'x-opencode-ticket': '1' } })
    assert.equal(t2.status, t1.status)
    assert.deepEqual(Object.keys(t2.json), Object.keys(t1.json))
    assert.equal(t2.json.expires_in, t1.json.expires_in)
    assert.match(t2.json.ticket, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    same(
      ...(await pair('POST', '/connect-token', {
        headers: { 'x-opencode-ticket': '1', origin: 'https://evil.example' },
      })),
      'connect-token from a foreign origin',
    )
    same(...(await pair('GET', '/connect')), 'connect without an upgrade')
    same(...(await pair('GET', '/connect?cursor=1&cursor=2')), 'connect with a repeated cursor')
    same(...(await pair('GET', '/connect?ticket=made-up')), 'connect with a bad ticket')

    for (const [method, p] of [
      ['GET', '/pty/pty_nope'],
      ['PUT', '/pty/pty_nope'],
      ['DELETE', '/pty/pty_nope'],
      ['GET', '/pty/nope'],
      ['GET', '/pty/pty_nope/connect'],
    ])
      same(
        ...(await both(method, p, method === 'PUT' ? { body: { title: 'a' } } : undefined)),
        `${method} ${p}`,
      )
    same(
      ...(await both('POST', '/pty/pty_nope/connect-token', { headers: { 'x-opencode-ticket': '1' } })),
      'connect-token of a missing session',
    )

    same(...(await pair('DELETE', '')), 'remove')
    same(...(await pair('DELETE', '')), 'remove again')
    same(...(await pair('GET', '')), 'get after remove')
  })

  test('the WebSocket: replay, cursor frame, output, input and the close on exit', async () => {
    const run = async (target) => {
      const info = (await request(target, 'POST', '/pty', { body: { command: '/bin/sh' } })).json
      const ticket = (
        await request(target, 'POST', `/pty/${info.id}/connect-token`, {
          headers: { 'x-opencode-ticket': '1' },
        })
      ).json.ticket
      await new Promise((r) => setTimeout(r, 500))
      const term = await openTerminal(target, info.id, `cursor=0&ticket=${ticket}`)
      await term.until((f) => f.some((x) => x.type === 'binary'), 'the cursor frame')
      const meta = term.frames.find((x) => x.type === 'binary').data
      const replayed = term.frames
        .filter((x) => x.type === 'text')
        .map((x) => x.data)
        .join('')
      term.send('echo h\u00e9-$((40+2)); exit 3\r')
      await term.until((f) => f.some((x) => x.type === 'close' || x.type === 'eof'), 'the close')
      const output = term.frames
        .filter((x) => x.type === 'text')
        .map((x) => x.data)
        .join('')
      const close = term.frames.find((x) => x.type === 'close')
      term.close()
      await new Promise((r) => setTimeout(r, 300))
      const after = await request(target, 'GET', `/pty/${info.id}`)
      const reuse = await request(target, 'GET', `/pty/${info.id}/connect?ticket=${ticket}`)
      return { meta, replayed, output, close, after: after.status, reuse: reuse.status }
    }
    const a = await run(oc)
    const b = await run(stub)
    for (const r of [a, b]) {
      assert.equal(r.meta[0], 0, 'the meta frame starts with a zero byte')
      assert.deepEqual(JSON.parse(r.meta.subarray(1).toString()), { cursor: r.replayed.length })
      assert.match(r.output, /h\u00e9-42\r\n/)
    }
    assert.deepEqual(b.close, a.close, 'closed with 1000 and no reason')
    assert.deepEqual([b.after, b.reuse], [a.after, a.reuse], 'gone after the exit, and the ticket used up')
  })
})
