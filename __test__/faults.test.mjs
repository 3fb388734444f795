// Real faults on real parts: every remote host is a real sshd inside its own network namespace, reached
// over a veth link that these tests cut (ip link down), make lossy (iptables) or slow (the delaying relay);
// sshd is restarted, the remote disk fills up, the remote opencode is killed. Each case checks what the
// user sees, and compares the local session (the real `opencode serve`) with the remote's own copy
// (`opencode export` as the remote user) message by message: nothing lost, nothing twice.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, readlink, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { messageText } from './harness/opencode.mjs'
import { exec, onExit, track } from './harness/proc.mjs'
import { startFaultWorld } from './support/fault-world.mjs'
import { repoRoot } from './support/package.mjs'
import { compareMessages, toolParts } from './support/sessions.mjs'
import { hostArch } from './support/stub.mjs'
import { recordSummary } from './support/summary.mjs'

const require = createRequire(import.meta.url)

/** The issue asks for 10 s cuts: longer than a TCP retransmit or two, shorter than keepalive give-up. */
const CUT_MS = 10_000
const MiB = 1024 * 1024

let world, version
/** tmpfs mounts to take down before the remote homes are removed. */
const mounts = []

before(async () => {
  version = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')).version
  world = await startFaultWorld({
    lossy: { relay: { delayMs: 50 } },
    // A slow link, so the 10 s cut surely lands while the stub is on its way.
    upload: { relay: { delayMs: 50, bytesPerSec: 4 * MiB } },
    cutwait: {},
    tunnel: {},
    restart: {},
    diskfull: {},
    diskfill: {},
    killed: {},
  })
})

after(async () => {
  for (const m of mounts) await m.unmount()
  await world?.stop()
})

/**
 * A fault case: its body returns the evidence for the summary once its assertions passed; a failure is
 * recorded too (ok: false) before it fails the test.
 */
function faultCase(name, body) {
  test(name, async () => {
    let row
    try {
      row = await body()
    } catch (error) {
      const why = String(error?.message ?? error)
        .split('\n')[0]
        .slice(0, 160)
      recordSummary({ kind: 'fault', name, ok: false, userSees: `test failed: ${why}` })
      throw error
    }
    recordSummary({ kind: 'fault', name, ok: true, ...row })
  })
}

const callRemoteLogin = (args) => `CALL_TOOL:remote_login ${JSON.stringify(args)}`
const bash = (command) => `CALL_TOOL:bash ${JSON.stringify({ command })}`

/** How often the remote model was asked to start the task carrying `marker` (once per dispatch). */
function remoteStarts(marker) {
  return world.llm.requests.filter(
    (r) =>
      r.model === 'remote-m' &&
      (r.tools ?? []).length > 0 &&
      r.messages.at(-1)?.role === 'user' &&
      JSON.stringify(r.messages.at(-1)).includes(marker),
  ).length
}

/** The text parts a round trip wrote into the assistant message holding its `call`. */
function returnedTexts(messages, call) {
  const message = messages.find((m) => m.info.id === call.messageID)
  return message.parts.filter((p) => p.type === 'text' && p.id > call.id).map((p) => p.text)
}

/**
 * The checks every successful round trip must pass: the call completed, the remote received the local
 * history intact, its work came back once as text in the calling message, and nothing the remote made
 * (a message, a tool call) entered the local session.
 */
async function checkRoundTrip(host, sessionID, marker) {
  const messages = await world.messages(sessionID)
  const call = toolParts(messages, 'remote_login').at(-1)
  assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
  assert.match(call.state.output, new RegExp(`round trip to ${host.name} is finished`))
  const remote = await host.exportSession(sessionID)
  const history = messages.filter((m) => m.info.id < call.messageID)
  const cmp = compareMessages(remote.messages, history)
  assert.deepEqual(cmp.mismatches, [], 'the remote received the local history, message by message')
  const work = returnedTexts(messages, call).filter(
    (t) => t.startsWith(`**${host.name}** · \`bash\``) && t.includes(marker),
  )
  assert.equal(work.length, 1, 'the remote work arrived exactly once')
  checkNothingRemote(messages, remote.messages)
  assert.equal(remoteStarts(marker), 1, 'the remote task ran once')
  return { call, messages, cmp }
}

/** No message the remote made, and no tool call but our own, is in the local session. */
function checkNothingRemote(localMessages, remoteMessages) {
  const localIds = new Set(localMessages.map((m) => m.info.id))
  assert.deepEqual(
    remoteMade(remoteMessages)
      .filter((m) => localIds.has(m.info.id))
      .map((m) => m.info.id),
    [],
    'no message of the remote run is in the local session',
  )
  for (const m of localMessages) {
    assert.ok(!messageText(m).startsWith('[Environment]'), 'the remote continuation prompt stayed remote')
    for (const p of m.parts) if (p.type === 'tool') assert.equal(p.tool, 'remote_login')
  }
}

/** Messages the remote made itself: its continuation prompt and its model's answers. */
const remoteMade = (messages) =>
  messages.filter(
    (m) =>
      m.info.modelID === 'remote-m' || (m.info.role === 'user' && messageText(m).includes('[Environment]')),
  )

/**
 * The local session after a failed round trip: every message it had before is unchanged, nothing the
 * remote made came in, nothing is there twice.
 */
function checkUntouched(beforeMessages, afterMessages, remoteMessages = []) {
  const cmp = compareMessages(afterMessages, beforeMessages)
  assert.deepEqual(cmp.mismatches, [], 'the messages from before the call are unchanged')
  checkNothingRemote(afterMessages, remoteMessages)
  const beforeIds = new Set(beforeMessages.map((m) => m.info.id))
  for (const m of afterMessages.filter((m) => !beforeIds.has(m.info.id))) {
    assert.ok(
      m.info.role === 'user' || m.info.modelID === 'local-m',
      `only local turns were added: ${m.info.id}`,
    )
    assert.ok(!messageText(m).includes('[Environment]'), 'the remote continuation prompt stayed remote')
  }
  const ids = afterMessages.map((m) => m.info.id)
  assert.equal(new Set(ids).size, ids.length, 'no message id twice')
  return { compared: cmp.compared + remoteMessages.length, lost: cmp.lost, duplicated: cmp.duplicated }
}

/** A local session with one finished turn, so there is history to protect. */
async function sessionWithHistory() {
  const sessionID = await world.newSession()
  await world.prompt(sessionID, `hello from ${sessionID}`)
  return sessionID
}

/** Round trips the local addon still remembers as unfinished for `sessionID`. */
async function pendingJobs(sessionID) {
  const dir = path.join(world.local.state, 'opencode-remote', 'pending')
  return (await readdir(dir).catch(() => [])).filter((f) => f.startsWith(sessionID))
}

/**
 * Mount a tmpfs of `size` owned by the remote user at `dir` (created if missing), removed in after(), at
 * exit and by the reaper.
 */
async function mountTmpfs(host, dir, size) {
  await mkdir(dir, { recursive: true })
  await exec('mount', [
    '-t',
    'tmpfs',
    '-o',
    `size=${size},mode=0700,uid=${host.sshd.uid},gid=${host.gid}`,
    'tmpfs',
    dir,
  ])
  const untrack = track({ mount: dir })
  let mounted = true
  const unmountSync = () => {
    if (!mounted) return
    mounted = false
    require('node:child_process').spawnSync('umount', ['-l', dir], { stdio: 'ignore' })
    untrack()
  }
  const unregister = onExit(unmountSync)
  const mount = {
    dir,
    async unmount() {
      unmountSync()
      unregister()
    },
    async available() {
      const s = await statfs(dir)
      return s.bavail * s.bsize
    },
    /** Fill the tmpfs until only `leave` bytes are free. */
    async fill(leave) {
      await writeFile(path.join(dir, 'filler'), Buffer.alloc(Math.max(0, (await mount.available()) - leave)))
    },
    async unfill() {
      await rm(path.join(dir, 'filler'), { force: true })
    },
  }
  mounts.push(mount)
  return mount
}

const sha256 = async (file) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex')

/** `opencode-remote setup <host> --json` as a user would run it. */
function runSetup(host) {
  const env = world.cliEnv()
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [world.pkg.bin, 'setup', host, '--json'],
      { env, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? (error.code ?? error.signal) : 0, stdout, stderr }),
    )
  })
}

async function waitUntil(what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`

describe('faults', { concurrency: true }, () => {
  faultCase('100 ms RTT with 5 % packet loss: a round trip succeeds', async () => {
    const host = world.hosts.lossy
    await host.netns.setLoss(0.05)
    const marker = `lossy-${Date.now()}`
    const sessionID = await sessionWithHistory()
    const started = Date.now()
    await world.prompt(
      sessionID,
      callRemoteLogin({ host: 'lossy', mode: 'round-trip', message: bash(`echo ${marker}`) }),
    )
    const { call, cmp } = await checkRoundTrip(host, sessionID, marker)
    const took = Date.now() - started
    const dropped = await host.netns.droppedPackets()
    await host.netns.setLoss(0)
    assert.ok(dropped > 0, 'the link really lost packets')
    return {
      sessionsCompared: 1,
      messagesCompared: cmp.compared,
      lost: cmp.lost,
      duplicated: cmp.duplicated,
      userSees: `round trip completed in ${seconds(took)} (${dropped} packets dropped, ${call.state.metadata.reconnects} reconnects)`,
    }
  })

  faultCase('link cut 10 s in the middle of the stub upload (setup)', async () => {
    const host = world.hosts.upload
    const binDir = path.join(host.sshd.userHome, '.opencode-remote', 'bin', version)
    const staged = path.join(binDir, '.opencode-remote-stub.upload')
    const local = path.join(world.pkg.stubDir, `opencode-remote-stub-${version}-${hostArch}-linux`)
    const total = (await stat(local)).size

    const first = runSetup('upload')
    const atCut = await waitUntil('the upload to start', async () => {
      const size = (await stat(staged).catch(() => null))?.size
      return size > 0 && size < total ? size : null
    })
    await host.netns.linkDown()
    const whileDown = (await stat(staged)).size
    await new Promise((r) => setTimeout(r, CUT_MS))
    await host.netns.linkUp()
    assert.ok(whileDown < total, `the cut landed mid-upload (${atCut}..${whileDown} of ${total} bytes)`)

    let outcome = await first
    let userSees
    if (outcome.code === 0) {
      userSees = 'setup succeeded after the link came back'
    } else {
      // A clear, retryable error, then a retry that works.
      assert.match(outcome.stderr, /SSH_FAILED|HOST_UNREACHABLE|TIMEOUT/, outcome.stderr)
      assert.match(outcome.stderr, /'upload'/, 'names the host')
      userSees = `${outcome.stderr.trim().split('\n').at(-1)}; the retry succeeded`
      outcome = await runSetup('upload')
    }
    assert.equal(outcome.code, 0, outcome.stderr)
    const report = JSON.parse(outcome.stdout)
    // Nothing half-installed: the installed binary is the whole stub, no upload is left over, and the
    // running stub is that binary.
    const installed = path.join(binDir, 'opencode-remote-stub')
    assert.equal(await sha256(installed), await sha256(local), 'the installed stub is complete')
    assert.deepEqual(
      (await readdir(binDir)).filter((f) => f.startsWith('.')),
      [],
      'no partial upload is left',
    )
    const info = JSON.parse(
      await readFile(path.join(host.sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
    )
    assert.equal(
      await readlink(`/proc/${info.pid}/exe`),
      installed,
      'the running stub is the verified binary',
    )
    assert.equal(report.version, version)
    return { sessionsCompared: 0, messagesCompared: 0, lost: 0, duplicated: 0, userSees }
  })

  faultCase('link cut 10 s during the round-trip wait', async () => {
    const host = world.hosts.cutwait
    const marker = `cutwait-${Date.now()}`
    const sessionID = await sessionWithHistory()
    const turn = world.prompt(
      sessionID,
      callRemoteLogin({ host: 'cutwait', mode: 'round-trip', message: bash(`sleep 13; echo ${marker}`) }),
    )
    // The remote run is in its tool (no LLM traffic for 13 s) and the client waits on the link: cut it.
    await host.waitForProcess((argv) => argv.some((a) => a.includes(`echo ${marker}`)), {
      turn: turn,
    })
    const cutAt = Date.now()
    await host.netns.cutLink(CUT_MS)
    await turn
    const { call, cmp } = await checkRoundTrip(host, sessionID, marker)
    assert.equal(await pendingJobs(sessionID).then((p) => p.length), 0, 'nothing left to collect')
    return {
      sessionsCompared: 1,
      messagesCompared: cmp.compared,
      lost: cmp.lost,
      duplicated: cmp.duplicated,
      userSees: `round trip completed ${seconds(Date.now() - cutAt)} after the cut began (${call.state.metadata.reconnects} reconnects)`,
    }
  })

  faultCase('link cut 10 s during a tunnelled tool call', async () => {
    const host = world.hosts.tunnel
    Object.assign(process.env, world.cliEnv())
    delete process.env.SSH_AUTH_SOCK
    const api = require(world.pkg.api)
    const place = { host: 'tunnel', workspace: 'ws-faults', root: '~/project', options: null }
    const ready = await api.remoteExec(place, { command: 'echo ready' })
    assert.equal(ready.result?.stdout, 'ready\n', JSON.stringify(ready))

    const marker = `tunnel-${Date.now()}`
    const call = api.remoteExec(place, { command: `sleep 3; echo ${marker}` }).then(
      (value) => ({ value }),
      (error) => ({ error }),
    )
    await host.waitForProcess((argv) => argv.some((a) => a.includes(`echo ${marker}`)), {
      turn: call,
    })
    const cutAt = Date.now()
    await host.netns.cutLink(CUT_MS)
    const outcome = await call
    let userSees
    if (outcome.value) {
      assert.equal(outcome.value.result?.stdout, `${marker}\n`, JSON.stringify(outcome.value))
      userSees = `the call completed ${seconds(Date.now() - cutAt)} after the cut began`
    } else {
      assert.match(outcome.error.code, /^(SSH_FAILED|HOST_UNREACHABLE|TIMEOUT)$/, String(outcome.error))
      assert.match(outcome.error.message, /'tunnel'/)
      userSees = `${outcome.error.code}: ${outcome.error.message}`
    }
    const healedAt = Date.now()
    const next = await api.remoteExec(place, { command: 'echo healed' })
    assert.equal(next.result?.stdout, 'healed\n', 'the tunnel healed')
    return {
      sessionsCompared: 0,
      messagesCompared: 0,
      lost: 0,
      duplicated: 0,
      userSees: `${userSees}; the next call worked in ${seconds(Date.now() - healedAt)}`,
    }
  })

  faultCase('sshd restarted during the round-trip wait', async () => {
    const host = world.hosts.restart
    const marker = `restart-${Date.now()}`
    const sessionID = await sessionWithHistory()
    const turn = world.prompt(
      sessionID,
      callRemoteLogin({ host: 'restart', mode: 'round-trip', message: bash(`sleep 10; echo ${marker}`) }),
    )
    await host.waitForProcess((argv) => argv.some((a) => a.includes(`echo ${marker}`)), {
      turn: turn,
    })
    const pid = host.sshd.pid
    // Stop the daemon and every connection it carried, stay down a while, start on the same port and keys.
    await host.sshd.restart({ sessions: true, downMs: 3000 })
    assert.notEqual(host.sshd.pid, pid)
    await turn
    const { call, cmp } = await checkRoundTrip(host, sessionID, marker)
    assert.ok(call.state.metadata.reconnects >= 1, `reconnected: ${JSON.stringify(call.state.metadata)}`)
    return {
      sessionsCompared: 1,
      messagesCompared: cmp.compared,
      lost: cmp.lost,
      duplicated: cmp.duplicated,
      userSees: `round trip completed after ${call.state.metadata.reconnects} reconnects`,
    }
  })

  faultCase('remote disk full: the dispatch fails clearly and leaves nothing behind', async () => {
    const host = world.hosts.diskfull
    const mount = await mountTmpfs(host, path.join(host.sshd.userHome, '.opencode-remote'), '8m')
    await mount.fill(0)
    const sessionID = await sessionWithHistory()
    const before = await world.messages(sessionID)
    await world.prompt(
      sessionID,
      callRemoteLogin({ host: 'diskfull', mode: 'round-trip', message: bash('echo never-ran') }),
    )
    const after = await world.messages(sessionID)
    const [call] = toolParts(after, 'remote_login')
    assert.equal(call.state.status, 'error', JSON.stringify(call.state))
    assert.match(call.state.error, /'diskfull'/, 'names the host')
    assert.match(call.state.error, /disk.*full|No space left/i, 'names the cause')
    const cmp = checkUntouched(before, after)
    // Nothing half-written to collect later: no job on the host, nothing pending here.
    assert.deepEqual(
      await readdir(path.join(mount.dir, 'jobs')).catch(() => []),
      [],
      'no job dir on the host',
    )
    assert.deepEqual(await pendingJobs(sessionID), [])

    assert.equal(remoteStarts('never-ran'), 0, 'the failed dispatch never ran')
    await mount.unfill()
    return {
      sessionsCompared: 1,
      messagesCompared: cmp.compared,
      lost: cmp.lost,
      duplicated: cmp.duplicated,
      userSees: call.state.error.split('\n')[0],
    }
  })

  faultCase('remote disk fills up while the session is written back', async () => {
    const host = world.hosts.diskfill
    const mount = await mountTmpfs(host, path.join(host.sshd.userHome, '.opencode-remote'), '8m')
    // A session of ~128 KiB: the job (~200 KiB: the session, and a 4 KiB page for each of its small files)
    // fits when dispatched, but the back-file (the session plus the remote's turn) no longer does.
    const sessionID = await world.newSession()
    await world.prompt(sessionID, `padding ${'x'.repeat(128 * 1024)}`)
    const before = await world.messages(sessionID)
    await mount.fill(300 * 1024)
    const marker = `diskfill-${Date.now()}`
    await world.prompt(
      sessionID,
      callRemoteLogin({ host: 'diskfill', mode: 'round-trip', message: bash(`echo ${marker}`) }),
    )
    const after = await world.messages(sessionID)
    const [call] = toolParts(after, 'remote_login')
    assert.equal(call.state.status, 'error', JSON.stringify(call.state))
    assert.match(call.state.error, /'diskfill'/, 'names the host')
    assert.match(
      call.state.error,
      /the remote disk is full \(the run ended, but exporting its session failed\)/,
    )
    const remote = await host.exportSession(sessionID)
    const cmp = checkUntouched(before, after, remote.messages)
    assert.deepEqual(await pendingJobs(sessionID), [])
    const leftovers = (await readdir(path.join(mount.dir, 'jobs'), { recursive: true })).filter((f) =>
      /back\.json/.test(f),
    )
    assert.deepEqual(leftovers, [], 'no half-written back-file is left')

    await mount.unfill()
    return {
      sessionsCompared: 1,
      messagesCompared: cmp.compared,
      lost: cmp.lost,
      duplicated: cmp.duplicated,
      userSees: call.state.error.split('\n')[0],
    }
  })

  faultCase('remote opencode killed mid-run', async () => {
    const host = world.hosts.killed
    const sessionID = await sessionWithHistory()
    const before = await world.messages(sessionID)
    const marker = `killed-${Date.now()}`
    const turn = world.prompt(
      sessionID,
      callRemoteLogin({ host: 'killed', mode: 'round-trip', message: bash(`sleep 6; echo ${marker}`) }),
    )
    await host.waitForProcess((argv) => argv.some((a) => a.includes(`echo ${marker}`)), {
      turn: turn,
    })
    const runPid = await host.waitForProcess(
      (argv) => argv.includes('run') && argv.includes('--session') && argv.includes(sessionID),
      { turn },
    )
    process.kill(runPid, 'SIGKILL')
    await turn
    const after = await world.messages(sessionID)
    const [call] = toolParts(after, 'remote_login')
    assert.equal(call.state.status, 'error', JSON.stringify(call.state))
    assert.match(call.state.error, /The remote run on 'killed' failed/)
    assert.match(call.state.error, /killed|signal 9/, 'says how the run ended')
    const remote = await host.exportSession(sessionID)
    const cmp = checkUntouched(before, after, remote.messages)
    assert.deepEqual(await pendingJobs(sessionID), [])

    // A retry brings back its own work once, and nothing of the killed run.
    const retryMarker = `killed-retry-${Date.now()}`
    await world.prompt(
      sessionID,
      callRemoteLogin({ host: 'killed', mode: 'round-trip', message: bash(`echo ${retryMarker}`) }),
    )
    const retry = await checkRoundTrip(host, sessionID, retryMarker)
    const resurfaced = returnedTexts(retry.messages, retry.call).filter((t) => t.includes(marker))
    assert.deepEqual(resurfaced, [], 'nothing of the killed run comes back later')
    return {
      sessionsCompared: 2,
      messagesCompared: cmp.compared + retry.cmp.compared,
      lost: cmp.lost + retry.cmp.lost,
      duplicated: cmp.duplicated + retry.cmp.duplicated + resurfaced.length,
      userSees: call.state.error.split('\n')[0],
    }
  })
})
