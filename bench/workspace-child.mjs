// One opencode-remote operation in a fresh Node process, so the SSH pool and the stub connection start
// empty (as in a newly started OpenCode). The addon is loaded before the clock starts (inside OpenCode the
// plugin loads at startup); the load itself is reported as `loadMs`. Prints one `RESULT {...}` line with
// epoch times (ms, sub-ms) for the bench to line up with remote file times.
//
// Usage: node bench/workspace-child.mjs '<json: {mode, apiPath, host, ...}>'
//   mode noop:   load the addon only.
//   mode setup:  `opencode-remote setup <host> --json` through the addon's CLI entry (runCli), as
//                bin/opencode-remote.js runs it; its JSON report goes to stdout before RESULT.
//   mode create: the remote part of a workspace create: `remoteAttach(place)` (bootstrap or reuse the
//                stub, register the workspace), then — timed apart as `firstCallMs` — the first
//                `remoteCall(place, 'fs/stat', '.')` through the new tunnel.
//   mode ops:    warm file/search calls: `fs/read` of `readPath` (and `fs/stat`, the smallest call) at
//                least 30 times, `grep` of `pattern` `samples` times, each after one untimed warm-up, next
//                to the same operation done locally on `localRoot` (fs.readFile + split into lines; `rg`
//                over the local copy), and to one round trip of the bench's link (`linkPort`: the sink
//                behind the same relay) answering as many bytes as the remote call's answer.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import net from 'node:net'
import path from 'node:path'

const require = createRequire(import.meta.url)
const epochMs = () => performance.timeOrigin + performance.now()

function rg(args, cwd) {
  return new Promise((resolve, reject) => {
    execFile('rg', args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      // rg exits 1 when nothing matched.
      if (err && err.code !== 1) return reject(new Error(`rg ${args.join(' ')}: ${err.message}\n${stderr}`))
      resolve(stdout)
    })
  })
}

/** One open connection to the sink's exchange mode: `exchange(n)` asks for n bytes and waits for them all. */
async function linkTo(port) {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  socket.setNoDelay(true)
  socket.write('E')
  let want = 0
  let done = null
  socket.on('data', (data) => {
    want -= data.length
    if (want <= 0 && done) done()
  })
  return {
    exchange: (bytes) =>
      new Promise((resolve) => {
        want = bytes
        done = resolve
        const head = Buffer.alloc(8)
        head.writeBigUInt64BE(BigInt(bytes))
        socket.write(head)
      }),
    close: () => socket.destroy(),
  }
}

async function timed(fn) {
  const start = performance.now()
  const value = await fn()
  return { ms: performance.now() - start, value }
}

async function main() {
  const args = JSON.parse(process.argv[2])
  const loadStart = performance.now()
  const api = require(args.apiPath)
  const loaded = performance.now()
  const out = { mode: args.mode, loadMs: loaded - loadStart, sinceProcessStartMs: loaded }

  if (args.mode === 'setup') {
    out.start = epochMs()
    out.code = await api.runCli(['setup', args.host, '--json'])
    out.end = epochMs()
    out.elapsedMs = out.end - out.start
  } else if (args.mode === 'create') {
    out.start = epochMs()
    await api.remoteAttach(args.place)
    out.end = epochMs()
    out.elapsedMs = out.end - out.start
    const first = await timed(() => api.remoteCall(args.place, 'fs/stat', { path: '.' }))
    out.firstCallMs = first.ms
    if (!first.value.result) throw new Error(`fs/stat answered ${JSON.stringify(first.value)}`)
  } else if (args.mode === 'ops') {
    const { place, readPath, pattern, localRoot, linkPort, samples } = args
    const remoteRead = () => api.remoteCall(place, 'fs/read', { path: readPath })
    const remoteGrep = () => api.remoteCall(place, 'grep', { pattern, limit: 10_000 })
    const localRead = async () =>
      (await readFile(path.join(localRoot, readPath), 'utf8')).replace(/\n$/, '').split('\n')
    const localGrep = () => rg(['--line-number', '--no-heading', '--color=never', pattern, '.'], localRoot)
    // Warm-up: connection, stub, workspace registration, page cache on both copies.
    const first = await timed(remoteRead)
    out.firstCallMs = first.ms
    await remoteGrep()
    await localRead()
    await localGrep()
    // The smallest call (stat of the root): the fixed cost of one call, apart from its payload.
    const remoteStat = () => api.remoteCall(place, 'fs/stat', { path: '.' })
    const statAnswer = await remoteStat()
    // The link carries answers of the same size as the calls' JSON (the HTTP head and SSH framing aside).
    const link = await linkTo(linkPort)
    const readBytes = Buffer.byteLength(JSON.stringify(first.value))
    const statBytes = Buffer.byteLength(JSON.stringify(statAnswer))
    await link.exchange(readBytes)
    out.linkBytes = { read: readBytes, stat: statBytes }
    const r = {
      remoteRead: [],
      localRead: [],
      remoteGrep: [],
      localGrep: [],
      remoteStat: [],
      linkRead: [],
      linkStat: [],
    }
    // Reads take a few ms, so a few samples are all noise: many more of them than of grep.
    const quickSamples = Math.max(30, samples * 10)
    for (let i = 0; i < quickSamples; i++) {
      const rr = await timed(remoteRead)
      const lr = await timed(localRead)
      const rs = await timed(remoteStat)
      r.linkRead.push((await timed(() => link.exchange(readBytes))).ms)
      r.linkStat.push((await timed(() => link.exchange(statBytes))).ms)
      if (!rr.value.result) throw new Error(`fs/read answered ${JSON.stringify(rr.value).slice(0, 300)}`)
      r.remoteRead.push(rr.ms)
      r.localRead.push(lr.ms)
      r.remoteStat.push(rs.ms)
      out.check = {
        remoteLines: rr.value.result.lines.length,
        remoteTruncated: rr.value.result.truncated,
        localLines: lr.value.length,
      }
    }
    for (let i = 0; i < samples; i++) {
      const rg_ = await timed(remoteGrep)
      const lg = await timed(localGrep)
      if (!rg_.value.result) throw new Error(`grep answered ${JSON.stringify(rg_.value).slice(0, 300)}`)
      r.remoteGrep.push(rg_.ms)
      r.localGrep.push(lg.ms)
      Object.assign(out.check, {
        remoteMatches: rg_.value.result.matches.length,
        remoteGrepTruncated: rg_.value.result.truncated,
        localMatches: lg.value.split('\n').filter(Boolean).length,
      })
    }
    link.close()
    out.samples = r
  } else if (args.mode !== 'noop') {
    throw new Error(`unknown mode ${args.mode}`)
  }
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`workspace-child failed: ${err?.code ?? ''} ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
