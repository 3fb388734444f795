// One `remoteLogin` in a fresh process, so the SSH connection pool starts empty (an OpenCode process's first
// dispatch is cold). It reads the session over HTTP the way the plugin does, calls the addon and prints one
// `RESULT {...}` line with wall-clock epoch times (ms) for the bench to line up with remote file times.
// Usage: node bench/ours-child.mjs '<json: {serveUrl, sessionId, mode, directory, opencodeBin, apiPath}>'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** Epoch ms with sub-ms precision (the same clock as file times on this machine). */
const epochMs = () => performance.timeOrigin + performance.now()

async function getJson(url) {
  const res = await fetch(url, {
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`GET ${url} -> HTTP ${res.status}: ${text.slice(0, 500)}`)
  return JSON.parse(text)
}

async function main() {
  const args = JSON.parse(process.argv[2])
  const { serveUrl, sessionId, mode, directory, opencodeBin, apiPath } = args
  // Loaded before the clock starts: inside OpenCode the plugin (and the addon) load at startup.
  const api = require(apiPath)
  // Warm Node's fetch machinery on an unrelated route: the plugin's in-process client is warm too.
  await getJson(`${serveUrl}/path`)

  const query = `?directory=${encodeURIComponent(directory)}`
  const id = encodeURIComponent(sessionId)
  const start = epochMs()
  // As the plugin does: start the SSH handshake, then read the session while it runs.
  api.warmHost('bench', directory, null).catch(() => {})
  const [info, messages] = await Promise.all([
    getJson(`${serveUrl}/session/${id}${query}`),
    getJson(`${serveUrl}/session/${id}/message${query}`),
  ])
  const exportJson = JSON.stringify({ info, messages })
  const readDone = epochMs()
  const result = await api.remoteLogin({
    sessionId,
    host: 'bench',
    mode,
    exportJson,
    opencodeBin,
    projectDir: directory,
    options: null,
  })
  const end = epochMs()
  const out = {
    start,
    readDone,
    end,
    elapsedMs: end - start,
    readMs: readDone - start,
    exportBytes: Buffer.byteLength(exportJson),
    jobId: result.jobId,
    mode: result.mode,
    timings: result.timings,
  }
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`ours-child failed: ${err?.code ?? ''} ${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
