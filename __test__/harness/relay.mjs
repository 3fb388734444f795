// A tiny delaying TCP relay for fault injection on loopback (tc netem is not available here), in the spirit
// of Shopify's toxiproxy: it sits between a client and a server (e.g. sshd), delays every chunk in EACH
// direction while keeping order, can blackhole traffic (pause) and can cut every live connection (reset).
import net from 'node:net'

/** Bytes held per direction before the sender is paused (backpressure through the delay). */
const HIGH_WATER = 4 * 1024 * 1024

/**
 * One direction of a relayed connection: chunks wait in a FIFO until their due time, then go out in order.
 * The sender's half-close (`end`) and its disappearance (`close`) travel through the same queue, so they
 * reach the other side after the data sent before them, never earlier.
 */
class Pipe {
  /**
   * @param {net.Socket} src
   * @param {net.Socket} dst
   * @param {{delayMs: number, paused: boolean, bytesPerSec: number}} state shared with the relay, read on
   *   every chunk
   */
  constructor(src, dst, state) {
    this.src = src
    this.dst = dst
    this.state = state
    /** @type {Array<{data?: Buffer, end?: true, close?: true, due: number}>} */
    this.queue = []
    this.lastDue = 0
    this.timer = null
    this.queuedBytes = 0
    this.ended = false
    this.closed = false
    src.on('data', (data) => this.push({ data }))
    src.on('end', () => this.push({ end: true }))
    dst.on('drain', () => {
      if (this.queuedBytes < HIGH_WATER) src.resume()
    })
  }

  /** @param {{data?: Buffer, end?: true, close?: true}} item */
  push(item) {
    if (this.closed) return
    if (item.end || item.close) {
      if (this.ended && item.end) return
      this.ended = true
    }
    // Never earlier than the item before it: a lowered delay must not reorder the stream. With a bandwidth
    // cap, a chunk also waits until the link has carried the bytes queued before it.
    const wire = item.data && this.state.bytesPerSec ? (item.data.length * 1000) / this.state.bytesPerSec : 0
    const due = Math.max(performance.now() + this.state.delayMs, this.lastDue + wire)
    this.lastDue = due
    this.queue.push({ ...item, due })
    if (item.data) {
      this.queuedBytes += item.data.length
      if (this.queuedBytes >= HIGH_WATER) this.src.pause()
    }
    this.flush()
  }

  flush() {
    if (this.closed || this.state.paused) return
    clearTimeout(this.timer)
    this.timer = null
    const now = performance.now()
    while (this.queue.length && this.queue[0].due <= now) {
      const item = this.queue.shift()
      if (this.dst.destroyed) continue
      if (item.data) {
        this.queuedBytes -= item.data.length
        const ok = this.dst.write(item.data)
        if (ok && this.queuedBytes < HIGH_WATER) this.src.resume()
      } else if (item.end) {
        this.dst.end()
      } else if (item.close) {
        // The sender is gone for good: flush what we wrote, then close this side too.
        this.dst.destroySoon()
      }
    }
    if (this.queue.length) {
      this.timer = setTimeout(() => this.flush(), Math.max(1, Math.ceil(this.queue[0].due - now)))
    }
  }

  close() {
    this.closed = true
    clearTimeout(this.timer)
    this.queue = []
  }
}

/**
 * Start a relay on `host`:0 that forwards every connection to `targetHost` (default `host`):`targetPort`.
 *
 * `delayMs` is added to every chunk in each direction, so a round trip grows by 2 × delayMs. `bytesPerSec`
 * (0 = unlimited) caps each direction of each connection like a slow link. `pause()` holds
 * all data (both directions, all connections, new ones too) without closing anything; `resume()` releases it
 * in order. `resetAll()` destroys every live connection with a TCP RST to both ends. `stop()` closes the
 * listener and every connection.
 *
 * @param {{targetPort: number, delayMs?: number, host?: string, targetHost?: string, bytesPerSec?: number}} opts
 * @returns {Promise<Relay>}
 */
export async function startRelay({
  targetPort,
  delayMs = 0,
  host = '127.0.0.1',
  targetHost = host,
  bytesPerSec = 0,
}) {
  if (!Number.isInteger(targetPort) || targetPort <= 0) throw new Error('startRelay: targetPort is required')
  const state = { delayMs: checkDelay(delayMs), paused: false, bytesPerSec: checkRate(bytesPerSec) }
  /** @type {Set<{pipes: Pipe[], teardown: (reset: boolean) => void}>} */
  const conns = new Set()
  let accepted = 0

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++
    // Writes to a socket that is still connecting are buffered by Node, so no wait is needed here.
    const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true })
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const pipes = [new Pipe(client, upstream, state), new Pipe(upstream, client, state)]
    let done = false
    const teardown = (reset) => {
      if (done) return
      done = true
      conns.delete(conn)
      for (const p of pipes) p.close()
      for (const s of [client, upstream]) {
        if (s.destroyed) continue
        if (reset) s.resetAndDestroy()
        else s.destroy()
      }
    }
    const conn = { pipes, teardown }
    conns.add(conn)
    // An error on either side resets both, like a real network failure.
    client.on('error', () => teardown(true))
    upstream.on('error', () => teardown(true))
    // A side that closes takes the other one down once everything it sent has been delivered.
    client.on('close', () => (upstream.destroyed ? teardown(false) : pipes[0].push({ close: true })))
    upstream.on('close', () => (client.destroyed ? teardown(false) : pipes[1].push({ close: true })))
  })

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = /** @type {net.AddressInfo} */ (server.address())

  return {
    port,
    host,
    targetHost,
    targetPort,
    get delayMs() {
      return state.delayMs
    },
    setDelay(ms) {
      state.delayMs = checkDelay(ms)
    },
    setBandwidth(bytesPerSec) {
      state.bytesPerSec = checkRate(bytesPerSec)
    },
    pause() {
      state.paused = true
    },
    resume() {
      state.paused = false
      for (const c of conns) for (const p of c.pipes) p.flush()
    },
    resetAll() {
      for (const c of [...conns]) c.teardown(true)
    },
    stats() {
      return { accepted, active: conns.size }
    },
    async stop() {
      for (const c of [...conns]) c.teardown(false)
      await new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

function checkRate(bytesPerSec) {
  if (!Number.isFinite(bytesPerSec) || bytesPerSec < 0)
    throw new Error(`relay bandwidth must be a number >= 0 (0 = unlimited), got ${bytesPerSec}`)
  return bytesPerSec
}

function checkDelay(ms) {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`relay delay must be a number >= 0, got ${ms}`)
  return ms
}

/**
 * @typedef {object} Relay
 * @property {number} port the relay's listening port on `host`
 * @property {string} host
 * @property {number} targetPort
 * @property {string} targetHost
 * @property {number} delayMs the current one-way delay
 * @property {(ms: number) => void} setDelay one-way delay for chunks arriving from now on (order is kept)
 * @property {(bytesPerSec: number) => void} setBandwidth per-direction cap from now on (0 = unlimited)
 * @property {() => void} pause blackhole: hold all data, keep every socket open
 * @property {() => void} resume release the held data, in order
 * @property {() => void} resetAll destroy every live connection (RST to both ends)
 * @property {() => {accepted: number, active: number}} stats connections accepted so far, and still open
 * @property {() => Promise<void>} stop close the listener and every connection
 */
