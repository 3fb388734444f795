// Load on one host whose sshd allows MaxSessions 10: 20 remote_login dispatches at once through the real
// `opencode serve` with the packed plugin, then bursts of 50 tunnelled tool calls at once through the addon.
// Everything must succeed with the right individual results over one pooled SSH connection, the server must
// never see more sessions than our cap, and memory must stay bounded. Counts come from the outside: sshd's
// own log (connections, session slots, forwarded channels), `ss`, the remote DB and /proc.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { chown, mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'
import { recordSummary } from './support/summary.mjs'
import { startWorld } from './support/world.mjs'

const require = createRequire(import.meta.url)
const run = promisify(execFile)

const MAX_SESSIONS = 10
/** The addon's channel cap per connection (src/ssh/connect.rs MAX_CHANNELS_PER_CONNECTION). */
const CHANNEL_CAP = 8
const DISPATCHES = 20
const CALLS_PER_BURST = 50
const BURSTS = 4

let world, sshd

before(async () => {
  world = await startWorld({
    hosts: { pi: { host: 'pi-box', model: 'fake/remote-m', agent: 'build' } },
    // DEBUG1 adds one line per forwarded (direct-streamlocal) channel; sessions are logged at VERBOSE already.
    sshd: { maxSessions: MAX_SESSIONS, extraConfig: ['LogLevel DEBUG1'] },
  })
  sshd = world.sshd
})

after(async () => {
  await world?.stop()
})

test(`${DISPATCHES} concurrent remote_login dispatches share one connection and land exactly once`, async (t) => {
  // One plain turn first, so OpenCode's one-time loading (providers, tools) is in the baseline.
  await world.prompt(await world.newSession(), 'warm up')
  const sessions = []
  for (let i = 0; i < DISPATCHES; i++) sessions.push(await world.newSession())
  const logStart = (await sshd.readLog()).length
  // The addon runs inside `opencode serve` here, next to OpenCode's own state for 20 live sessions (a few
  // MiB each), so the bound is half the warmed-up server rather than a fixed figure.
  const memory = watchMemory({ serve: { pid: world.serve.pid, fraction: 1 / 2 } })
  const connections = watchConnections(sshd.port)
  t.after(() => {
    memory.stop()
    connections.stop()
  })

  const serveCpu = cpuSeconds(world.serve.pid)
  const started = Date.now()
  await Promise.all(
    sessions.map((id, i) =>
      world.prompt(
        id,
        `CALL_TOOL:remote_login ${JSON.stringify({ host: 'pi', message: `load marker ${i}` })}`,
      ),
    ),
  )
  const dispatchedMs = Date.now() - started

  // Every call completed, and what it exported is what the remote must hold.
  const expected = new Map()
  const jobs = new Map()
  const callMs = []
  for (const id of sessions) {
    const messages = await world.serve.client.get(`/session/${id}/message`)
    const calls = messages.flatMap((m) =>
      m.parts.filter((p) => p.type === 'tool' && p.tool === 'remote_login').map((p) => ({ m, p })),
    )
    assert.equal(calls.length, 1, `${id}: one remote_login call`)
    const { m, p } = calls[0]
    assert.equal(p.state.status, 'completed', `${id}: ${JSON.stringify(p.state)}`)
    assert.match(p.state.output, /continues on pi/)
    const upTo = messages.findIndex((x) => x.info.id === m.info.id)
    expected.set(id, { messageIds: messages.slice(0, upTo + 1).map((x) => x.info.id), callPart: p.id })
    jobs.set(id, p.state.metadata.jobId)
    callMs.push(p.state.metadata.dispatchMs)
  }

  // The detached remote runs finish too (each continues its own session once).
  const jobsDir = path.join(sshd.userHome, '.opencode-remote', 'jobs')
  await waitUntil(
    () => [...jobs.values()].every((job) => existsSync(path.join(jobsDir, job, 'done'))),
    150_000,
  )
  const mem = memory.stop()
  const conn = connections.stop()
  const totalMs = Date.now() - started
  const serveCpuS = (cpuSeconds(world.serve.pid) - serveCpu).toFixed(1)
  for (const [id, job] of jobs) {
    assert.equal(readFileSync(path.join(jobsDir, job, 'status'), 'utf8').trim(), '0', `remote run of ${id}`)
  }

  // The remote DB, read as the remote user: each session once, with every message we sent, exactly once.
  const db = path.join(sshd.userHome, '.local', 'share', 'opencode', 'opencode.db')
  const list = sessions.map((s) => `'${s}'`).join(',')
  const remoteSessions = await sql(db, `select id from session where id in (${list})`)
  const remoteMessages = await sql(
    db,
    `select id, session_id, json_extract(data, '$.role') as role from message where session_id in (${list})`,
  )
  const remoteCalls = await sql(
    db,
    `select id, session_id, json_extract(data, '$.state.status') as status from part
     where session_id in (${list}) and json_extract(data, '$.tool') = 'remote_login'`,
  )
  const jobDirs = await Promise.all(
    (await readdir(jobsDir)).map((job) => readFile(path.join(jobsDir, job, 'session_id'), 'utf8')),
  )
  let lost = 0
  let duplicated = 0
  let messagesCompared = 0
  for (const id of sessions) {
    const { messageIds, callPart } = expected.get(id)
    const rows = remoteSessions.filter((r) => r.id === id).length
    const dispatches = jobDirs.filter((s) => s === id).length
    duplicated += Math.max(0, rows - 1) + Math.max(0, dispatches - 1)
    assert.equal(rows, 1, `${id} exists once on the remote`)
    assert.equal(dispatches, 1, `${id} was dispatched once`)
    const remote = remoteMessages.filter((r) => r.session_id === id)
    const remoteIds = new Set(remote.map((r) => r.id))
    const missing = messageIds.filter((m) => !remoteIds.has(m))
    lost += missing.length
    messagesCompared += messageIds.length
    assert.deepEqual(missing, [], `${id}: every exported message is on the remote`)
    const continuations = remote.filter((r) => r.role === 'user' && !messageIds.includes(r.id))
    assert.equal(continuations.length, 1, `${id}: the remote continued it once`)
    const call = remoteCalls.filter((r) => r.session_id === id)
    assert.deepEqual(
      call.map((r) => [r.id, r.status]),
      [[callPart, 'completed']],
      `${id}: the remote sees our call as completed`,
    )
  }

  // sshd's view: one new connection for all 20, and never more session slots than our cap.
  const log = parseSshdLog((await sshd.readLog()).slice(logStart))
  report('remote_login burst', {
    dispatches: DISPATCHES,
    allTurnsDoneMs: dispatchedMs,
    remoteLoginCallMs: spread(callMs),
    remoteRunsDoneMs: totalMs,
    serveCpuS,
    sshConnections: log.accepted,
    establishedPeak: conn.peak,
    peakSessions: `${log.peakSessions} (cap ${CHANNEL_CAP}, MaxSessions ${MAX_SESSIONS})`,
    ...mem.figures(),
  })
  assert.equal(
    log.accepted,
    1,
    `one SSH connection for ${DISPATCHES} dispatches (sshd accepted ${log.accepted})`,
  )
  assert.ok(conn.peak <= 1, `established connections to sshd peaked at ${conn.peak}`)
  assert.equal(log.refused, 0, 'sshd never refused a session')
  assert.equal(log.sessions, DISPATCHES, 'one exec session per dispatch')
  assert.ok(
    log.peakSessions <= CHANNEL_CAP,
    `at most ${CHANNEL_CAP} sessions at once, saw ${log.peakSessions}`,
  )
  mem.assertBounded()
  recordSummary({
    kind: 'load',
    name: `${DISPATCHES} concurrent remote_login dispatches, MaxSessions ${MAX_SESSIONS}`,
    ok: true,
    inputs: DISPATCHES,
    sessionsCompared: sessions.length,
    messagesCompared,
    lost,
    duplicated,
    userSees: `all ${DISPATCHES} dispatched; 1 SSH connection, ≤${log.peakSessions} sessions at once`,
  })
})

test(`${BURSTS} bursts of ${CALLS_PER_BURST} concurrent tunnelled tool calls, no cross-talk`, async (t) => {
  const home = world.local.home
  Object.assign(process.env, {
    HOME: home,
    XDG_CONFIG_HOME: world.local.config,
  })
  delete process.env.SSH_AUTH_SOCK
  const api = require(world.pkg.api)
  const root = path.join(sshd.userHome, 'load')
  const place = { host: 'box', workspace: 'load', root: '~/load', options: { hosts: { box: 'pi-box' } } }

  // Files each read call owns, written on the host directly.
  await mkdir(path.join(root, 'in'), { recursive: true })
  for (let i = 0; i < CALLS_PER_BURST; i++) await writeFile(path.join(root, 'in', `r${i}.txt`), `read-${i}\n`)
  for (const p of [root, path.join(root, 'in')]) await chown(p, sshd.uid, sshd.uid)

  // Warm up: bootstrap the stub and the tunnel, then one burst so pools reach their working size.
  const warm = await api.remoteExec(place, { command: 'echo warm' })
  assert.equal(warm.result.stdout, 'warm\n')
  const stubPid = JSON.parse(
    await readFile(path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
  ).pid
  // Each call has its own marker: an echo, a file it writes, or a file it reads. `check` says what is wrong
  // with its answer (another call's marker, a missing result), or nothing.
  const calls = (burst) =>
    Array.from({ length: CALLS_PER_BURST }, (_, i) => {
      const marker = `b${burst}-c${i}-${Math.random().toString(36).slice(2)}`
      switch (i % 3) {
        case 0:
          return {
            run: () => api.remoteExec(place, { command: `sleep 0.2; echo ${marker}` }),
            check: (r) => r.result?.stdout === `${marker}\n` || `exec ${marker}: ${JSON.stringify(r)}`,
          }
        case 1:
          return {
            run: () =>
              api.remoteCall(place, 'fs/write', {
                path: `out/${marker}.txt`,
                content: marker,
                createDirs: true,
              }),
            check: async (r) => {
              const written = await readFile(path.join(root, 'out', `${marker}.txt`), 'utf8').catch(() => '')
              return (r.result && written === marker) || `write ${marker}: ${JSON.stringify(r)} / ${written}`
            },
          }
        default:
          return {
            run: () => api.remoteCall(place, 'fs/read', { path: `in/r${i}.txt` }),
            check: (r) =>
              JSON.stringify(r.result?.lines) === JSON.stringify([`read-${i}`]) ||
              `read r${i}: ${JSON.stringify(r)}`,
          }
      }
    })
  /** Run one burst at once; returns the calls whose answer was wrong. */
  const burst = async (n) => {
    const batch = calls(n)
    const results = await Promise.all(batch.map((c) => c.run()))
    const verdicts = await Promise.all(results.map((r, i) => batch[i].check(r)))
    return verdicts.filter((v) => v !== true)
  }
  const warmStart = (await sshd.readLog()).length
  assert.deepEqual(await burst(0), [])
  const logStart = (await sshd.readLog()).length
  const warmForwarded = parseSshdLog((await sshd.readLog()).slice(warmStart, logStart)).forwarded
  // Here the Node process holds only the addon and this test, so a quarter of it (tens of MiB) is room
  // for allocator arenas and nothing more; the stub is small, so half of it.
  const memory = watchMemory({
    node: { pid: process.pid, fraction: 1 / 4 },
    stub: { pid: stubPid, fraction: 1 / 2 },
  })
  t.after(() => memory.stop())
  const afterEach = []
  const wrong = []
  const started = Date.now()
  for (let b = 1; b <= BURSTS; b++) {
    wrong.push(...(await burst(b)))
    afterEach.push({ node: rss(process.pid), stub: rss(stubPid) })
  }
  const burstsMs = Date.now() - started
  const mem = memory.stop()

  const log = parseSshdLog((await sshd.readLog()).slice(logStart))
  const ours = await connectionsOf(process.pid, sshd.port)
  assert.deepEqual(wrong, [], 'every call got its own answer')
  assert.equal(log.accepted, 0, `no new SSH connection during the bursts (sshd accepted ${log.accepted})`)
  assert.equal(ours, 1, `this process holds one SSH connection (${ours})`)
  assert.equal(log.refused, 0)
  const total = BURSTS * CALLS_PER_BURST
  // A leak would grow with every burst; allow a little allocator drift between the first and last.
  const drift = afterEach.at(-1).node - afterEach[0].node
  report('tunnelled tool calls', {
    calls: total,
    burstsMs,
    forwardedChannels: `${warmForwarded} in the warm-up burst, ${log.forwarded} in the ${total} calls after`,
    sshConnections: ours,
    nodeAfterEachBurst: afterEach.map((a) => kib(a.node)).join(' '),
    stubAfterEachBurst: afterEach.map((a) => kib(a.stub)).join(' '),
    ...mem.figures(),
  })
  assert.ok(warmForwarded > 0 && warmForwarded <= CALLS_PER_BURST, `warm-up opened ${warmForwarded} channels`)
  assert.ok(
    log.forwarded <= CALLS_PER_BURST,
    `forwarded channels are reused: ${log.forwarded} opened for ${total} calls`,
  )
  mem.assertBounded()
  const driftBound = afterEach[0].node / 16
  assert.ok(
    drift < driftBound,
    `node RSS drifted ${kib(drift)} over ${BURSTS - 1} bursts (bound ${kib(driftBound)})`,
  )
  recordSummary({
    kind: 'load',
    name: `${BURSTS}×${CALLS_PER_BURST} concurrent tunnelled tool calls`,
    ok: true,
    inputs: total,
    sessionsCompared: 0,
    messagesCompared: 0,
    lost: wrong.length,
    duplicated: 0,
    userSees: `all ${total} correct; 1 SSH connection, ${warmForwarded} forwarded channels reused`,
  })
})

/** Rows of a query on the remote user's OpenCode DB, read as that user (never leaving root-owned files). */
async function sql(db, query) {
  const { stdout } = await run('sqlite3', ['-readonly', '-json', db, query], { uid: sshd.uid, gid: sshd.uid })
  return stdout.trim() ? JSON.parse(stdout) : []
}

/**
 * What sshd logged: connections accepted, exec sessions started and the most session slots one connection
 * held (sshd allocates a new slot only when all are busy, so the highest slot id + 1 is the peak of
 * concurrent sessions), sessions refused over MaxSessions, and forwarded channels opened.
 */
function parseSshdLog(text) {
  const slots = new Map()
  let sessions = 0
  for (const m of text.matchAll(/Starting session: .* port (\d+) id (\d+)/g)) {
    sessions++
    slots.set(m[1], Math.max(slots.get(m[1]) ?? 0, Number(m[2]) + 1))
  }
  return {
    accepted: (text.match(/Accepted publickey for /g) ?? []).length,
    sessions,
    peakSessions: Math.max(0, ...slots.values()),
    refused: (text.match(/no more sessions/g) ?? []).length,
    forwarded: (text.match(/server_request_direct_streamlocal: originator/g) ?? []).length,
  }
}

/** Established TCP connections from `pid` to sshd's port. */
async function connectionsOf(pid, port) {
  const { stdout } = await run('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`])
  return stdout.split('\n').filter((l) => l.includes(`pid=${pid},`)).length
}

/** Samples the number of established connections to sshd's port (server side) until stopped. */
function watchConnections(port) {
  let peak = 0
  let stopped = false
  const loop = async () => {
    while (!stopped) {
      const { stdout } = await run('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`])
      peak = Math.max(peak, stdout.split('\n').filter(Boolean).length)
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  const done = loop()
  return {
    stop() {
      stopped = true
      done.catch(() => {})
      return { peak }
    },
  }
}

/** CPU time a process (and its reaped children) used so far, in seconds. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return fields.slice(11, 15).reduce((sum, ticks) => sum + Number(ticks), 0) / 100
}

/** VmRSS of a process in KiB. */
function rss(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
}

/**
 * RSS before, peak during (sampled every 50 ms, and the kernel's high-water mark, reset at the start) and
 * after, per named process `{pid, fraction}`; the peak may exceed the baseline by `fraction` of it.
 */
function watchMemory(procs) {
  const names = Object.keys(procs)
  const pid = (name) => procs[name].pid
  const before = {}
  const peak = {}
  for (const name of names) {
    writeFileSync(`/proc/${pid(name)}/clear_refs`, '5')
    before[name] = peak[name] = rss(pid(name))
  }
  const timer = setInterval(() => {
    for (const name of names) peak[name] = Math.max(peak[name], rss(pid(name)))
  }, 50)
  timer.unref()
  const hwm = (p) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))[1])
  let result
  return {
    /** Stop sampling (again: the same result) and return the figures. */
    stop() {
      if (result) return result
      clearInterval(timer)
      const afterRss = {}
      for (const name of names) {
        peak[name] = Math.max(peak[name], hwm(pid(name)))
        afterRss[name] = rss(pid(name))
      }
      const bound = (name) => Math.round(before[name] * procs[name].fraction)
      result = {
        figures: () =>
          Object.fromEntries(
            names.map((n) => [
              `${n}Rss`,
              `${kib(before[n])} → peak ${kib(peak[n])} → ${kib(afterRss[n])} (bound +${kib(bound(n))})`,
            ]),
          ),
        assertBounded() {
          for (const n of names) {
            const growth = peak[n] - before[n]
            assert.ok(growth < bound(n), `${n} RSS grew ${kib(growth)}, bound ${kib(bound(n))}`)
          }
        },
      }
      return result
    },
  }
}

/** `min / median / max` of some numbers. */
function spread(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return `${sorted[0]} / ${sorted[Math.floor(sorted.length / 2)]} / ${sorted.at(-1)}`
}

function kib(k) {
  return `${(k / 1024).toFixed(1)} MiB`
}

function report(title, figures) {
  console.log(`# load: ${title}`)
  for (const [k, v] of Object.entries(figures)) console.log(`#   ${k}: ${v}`)
}

async function waitUntil(predicate, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
