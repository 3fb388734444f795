// A minimal WebSocket client (RFC 6455) for tests: Node 20 has no global WebSocket without a flag.
// Text and binary frames in, masked text frames out, close frames reported with their code.
import { randomBytes } from 'node:crypto'
import http from 'node:http'

/**
 * Opens `url` (`ws://host:port/path?query`). Resolves to `{ send(text), next(timeoutMs), close() }`:
 * `next` resolves to the next message `{ type: 'text' | 'binary' | 'close', data, code }`.
 */
export function connectWebSocket(url, headers = {}) {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      headers: {
        ...headers,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      },
    })
    req.on('response', async (res) => {
      let body = ''
      for await (const chunk of res) body += chunk
      reject(new Error(`no upgrade: ${res.statusCode} ${body}`))
    })
    req.on('error', reject)
    req.on('upgrade', (_res, socket, head) => resolve(wrap(socket, head)))
    req.end()
  })
}

function wrap(socket, head) {
  let buffer = head ?? Buffer.alloc(0)
  const messages = []
  const waiters = []
  const deliver = (m) => (waiters.length ? waiters.shift()(m) : messages.push(m))
  const parse = () => {
    for (;;) {
      if (buffer.length < 2) return
      const opcode = buffer[0] & 0x0f
      let length = buffer[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) return
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) return
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (buffer.length < offset + length) return
      const payload = buffer.subarray(offset, offset + length)
      buffer = buffer.subarray(offset + length)
      if (opcode === 1) deliver({ type: 'text', data: payload.toString('utf8') })
      else if (opcode === 2) deliver({ type: 'binary', data: Buffer.from(payload) })
      else if (opcode === 8)
        deliver({ type: 'close', code: payload.length >= 2 ? payload.readUInt16BE(0) : null })
    }
  }
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk])
    parse()
  })
  socket.on('close', () => deliver({ type: 'close', code: null }))
  parse()
  const frame = (opcode, payload) => {
    const mask = randomBytes(4)
    const len = payload.length
    const header = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.alloc(4)
    if (len >= 126) {
      header[0] = 0x80 | opcode
      header[1] = 0x80 | 126
      header.writeUInt16BE(len, 2)
    }
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
    socket.write(Buffer.concat([header, mask, masked]))
  }
  return {
    send: (text) => frame(1, Buffer.from(text, 'utf8')),
    next: (timeoutMs = 10_000) =>
      messages.length
        ? Promise.resolve(messages.shift())
        : new Promise((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`no WebSocket message in ${timeoutMs} ms`)),
              timeoutMs,
            )
            waiters.push((m) => {
              clearTimeout(timer)
              resolve(m)
            })
          }),
    close: () => {
      frame(8, Buffer.from([0x03, 0xe8]))
      socket.end()
    },
  }
}
