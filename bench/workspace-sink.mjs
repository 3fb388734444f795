// The "remote service" of the tunnel throughput case: a TCP server on 127.0.0.1 and the same server on the
// Unix socket given as the first argument (what the tunnels forward to, like the stub's socket), in its own
// process (so it never shares an event loop with the client side). Prints `PORT <n>` once listening on both.
// Per connection, the first byte picks the direction:
//   'U' upload: count every byte until the client half-closes, answer `<count>\n`, close.
//   'D' download: read an 8-byte big-endian length, send that many bytes, close.
//   'E' exchange: for every 8-byte big-endian length read, send that many bytes; the connection stays open
//       (one round trip of the bench's simulated link with a given answer size, to set against ours).
import { chmodSync } from 'node:fs'
import net from 'node:net'

const CHUNK = Buffer.alloc(1024 * 1024, 0x5a)

const serve = (socket) => {
  if (socket.setNoDelay) socket.setNoDelay(true)
  let mode = null
  let count = 0
  let header = Buffer.alloc(0)
  socket.on('data', (data) => {
    if (mode === null) {
      mode = String.fromCharCode(data[0])
      data = data.subarray(1)
    }
    if (mode === 'U') {
      count += data.length
    } else if (mode === 'D' && header.length < 8) {
      header = Buffer.concat([header, data])
      if (header.length >= 8) send(socket, Number(header.readBigUInt64BE(0)))
    } else if (mode === 'E') {
      header = Buffer.concat([header, data])
      while (header.length >= 8) {
        socket.write(Buffer.alloc(Number(header.readBigUInt64BE(0)), 0x5a))
        header = header.subarray(8)
      }
    }
  })
  socket.on('end', () => {
    if (mode === 'U') socket.end(`${count}\n`)
    else if (mode === 'E') socket.end()
  })
  socket.on('error', () => {})
}
const server = net.createServer({ allowHalfOpen: true }, serve)
const unixServer = net.createServer({ allowHalfOpen: true }, serve)

function send(socket, total) {
  let left = total
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length)
      left -= n
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump)
        return
      }
    }
    socket.end()
  }
  pump()
}

server.listen(0, '127.0.0.1', () => {
  unixServer.listen(process.argv[2], () => {
    // The remote user sshd connects as is another user.
    chmodSync(process.argv[2], 0o666)
    process.stdout.write(`PORT ${server.address().port}\n`)
  })
})
// Exit with the bench (stdin closes when the parent goes away).
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
