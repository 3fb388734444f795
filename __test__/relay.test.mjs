// The delaying TCP relay used to inject latency, blackholes and resets between a client and sshd.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'

import { startRelay } from './harness/relay.mjs'

/** An echo server (or a sink that records what it got) on 127.0.0.1. */
async function startServer(onSocket) {
  const sockets = new Set()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    onSocket(s)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    sockets,
    async stop() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s))
    s.once('error', reject)
    s.setNoDelay(true)
  })
}

/** Read from `s` until `n` bytes arrived. */
function readBytes(s, n) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let got = 0
    const onData = (d) => {
      chunks.push(d)
      got += d.length
      if (got >= n) {
        s.off('data', onData)
        s.off('error', reject)
        const all = Buffer.concat(chunks)
        if (all.length > n) s.unshift(all.subarray(n))
        resolve(all.subarray(0, n))
      }
    }
    s.on('data', onData)
    s.once('error', reject)
  })
}

const closed = (s) => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', resolve)))

describe('relay', () => {
  let echo
  before(async () => {
    echo = await startServer((s) => s.pipe(s))
  })
  after(async () => {
    await echo?.stop()
  })

  test('bytes pass through intact and in order, both ways, including a half-close', async () => {
    const sink = []
    const server = await startServer((s) => {
      s.on('data', (d) => sink.push(d))
      s.on('end', () => s.end(Buffer.concat(sink)))
    })
    const relay = await startRelay({ targetPort: server.port, delayMs: 5 })
    try {
      const s = await connect(relay.port)
      const payload = randomBytes(3 * 1024 * 1024 + 17)
      // Many writes of odd sizes, with the delay changed halfway: order must still hold.
      const back = []
      s.on('data', (d) => back.push(d))
      const ended = new Promise((resolve) => s.once('end', resolve))
      for (let off = 0, i = 0; off < payload.length; i++) {
        const n = 1 + ((i * 7919) % 65_536)
        s.write(payload.subarray(off, off + n))
        off += n
        if (i === 40) relay.setDelay(0)
      }
      s.end()
      await ended
      const got = Buffer.concat(back)
      assert.equal(got.length, payload.length)
      assert.ok(got.equals(payload), 'the echoed stream equals what was sent')
      s.destroy()
    } finally {
      await relay.stop()
      await server.stop()
    }
  })

  test('delayMs is added in each direction: a ping-pong round trip takes at least 2 × delayMs', async () => {
    const relay = await startRelay({ targetPort: echo.port, delayMs: 25 })
    try {
      const s = await connect(relay.port)
      const rounds = 5
      const times = []
      for (let i = 0; i < rounds; i++) {
        const t0 = performance.now()
        s.write(Buffer.from([i]))
        const [b] = await readBytes(s, 1)
        times.push(performance.now() - t0)
        assert.equal(b, i)
      }
      for (const t of times) assert.ok(t >= 49.5, `round trip took ${t.toFixed(1)} ms, expected >= 50`)
      assert.ok(Math.min(...times) < 150, `round trips are not wildly slow: ${times.map(Math.round)}`)

      // Direct (no relay) is much faster: the delay comes from the relay, not the machine.
      relay.setDelay(0)
      const t0 = performance.now()
      s.write(Buffer.from([9]))
      await readBytes(s, 1)
      assert.ok(performance.now() - t0 < 40, 'with delay 0 the relay adds (almost) nothing')
      s.destroy()
    } finally {
      await relay.stop()
    }
  })

  test('pause() holds data without closing anything; resume() delivers it in order', async () => {
    const relay = await startRelay({ targetPort: echo.port })
    try {
      const s = await connect(relay.port)
      relay.pause()
      const got = []
      s.on('data', (d) => got.push(d))
      s.write('one ')
      s.write('two ')
      await new Promise((r) => setTimeout(r, 150))
      assert.equal(Buffer.concat(got).length, 0, 'nothing passes while paused')
      assert.equal(relay.stats().active, 1)
      assert.ok(!s.destroyed)
      relay.resume()
      s.write('three')
      const deadline = Date.now() + 2000
      while (Buffer.concat(got).toString() !== 'one two three' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10))
      }
      assert.equal(Buffer.concat(got).toString(), 'one two three')
      s.destroy()
    } finally {
      await relay.stop()
    }
  })

  test('resetAll() closes every client socket (and the upstream ones)', async () => {
    const relay = await startRelay({ targetPort: echo.port, delayMs: 1 })
    try {
      const a = await connect(relay.port)
      const b = await connect(relay.port)
      for (const s of [a, b]) s.on('error', () => {})
      a.write('x')
      await readBytes(a, 1)
      b.write('y')
      await readBytes(b, 1)
      assert.equal(relay.stats().active, 2)
      assert.equal(echo.sockets.size, 2)
      relay.resetAll()
      await Promise.all([closed(a), closed(b)])
      assert.equal(relay.stats().active, 0)
      const deadline = Date.now() + 2000
      while (echo.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      assert.equal(echo.sockets.size, 0, 'the upstream side was closed too')

      // The relay still accepts new connections afterwards.
      const c = await connect(relay.port)
      c.write('z')
      assert.equal((await readBytes(c, 1)).toString(), 'z')
      c.destroy()
    } finally {
      await relay.stop()
    }
  })

  test('a client that disconnects closes its upstream connection', async () => {
    const relay = await startRelay({ targetPort: echo.port, delayMs: 2 })
    try {
      const s = await connect(relay.port)
      s.write('x')
      await readBytes(s, 1)
      s.end()
      await closed(s)
      const deadline = Date.now() + 2000
      while (relay.stats().active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
      assert.equal(relay.stats().active, 0)
      assert.equal(relay.stats().accepted, 1)
    } finally {
      await relay.stop()
    }
  })
})
