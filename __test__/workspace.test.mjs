// SSH workspaces through the real OpenCode control plane (OPENCODE_EXPERIMENTAL_WORKSPACES=1): the
// ssh-provider adaptor creates a workspace on a real sshd's remote user, OpenCode connects to it, and
// sessions created in it run their tools on the host. The plugin is the installed package, and the stub it
// uploads to the fresh host is the one inside that package: nothing tells it where the stub is.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { startFakeLlm } from './harness/fake-llm.mjs'
import { followGlobalEvents, makeOpencodeHome, startServe, waitForMessages } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'
import { hostArch } from './support/stub.mjs'

const run = promisify(execFile)
let llm, sshd, local, serve, pkg

async function waitForStatus(id, wanted, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const statuses = await serve.client.get(
      `/experimental/workspace/status?directory=${encodeURIComponent(local.projectDir)}`,
    )
    const status = statuses.find((s) => s.workspaceID === id)?.status
    if (status === wanted) return
    assert.ok(Date.now() < deadline, `workspace ${id} is ${status}, not ${wanted}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function createWorkspace(extra) {
  return serve.client.post(
    `/experimental/workspace?directory=${encodeURIComponent(local.projectDir)}`,
    { type: 'ssh-provider', extra },
    { timeoutMs: 120_000, retries: 0 },
  )
}

before(async () => {
  ;[llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  local = await makeOpencodeHome(path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-ws-')), 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`],
    env: { OPENCODE_EXPERIMENTAL_WORKSPACES: '1' },
  })
  await sshd.writeClientSshFiles(local.home, { alias: 'box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({
      providers: {
        default: {
          strategy: 'first_available',
          hosts: [{ name: 'prod-1', aliases: ['p1'], ssh: { host: 'box' }, labels: ['linux'] }],
        },
        // first_available must skip a host that is down for one that answers.
        mixed: {
          strategy: 'first_available',
          hosts: [
            { name: 'dead-1', ssh: { host: '127.0.0.1', user: 'lab', port: await closedPort() } },
            { name: 'alt-1', ssh: { host: 'box' } },
          ],
        },
        // A host whose port refuses connections.
        down: {
          strategy: 'first_available',
          hosts: [{ name: 'lab-box', ssh: { host: '127.0.0.1', user: 'lab', port: await closedPort() } }],
        },
      },
    }),
  )
  serve = await startServe(local.env, local.projectDir)
})

after(async () => {
  await serve?.stop()
  await sshd?.stop()
  await llm?.stop()
})

describe('ssh-provider workspaces', () => {
  test('the adaptor is registered', async () => {
    const adapters = await serve.client.get(
      `/experimental/workspace/adapter?directory=${encodeURIComponent(local.projectDir)}`,
    )
    assert.ok(
      adapters.some((a) => a.type === 'ssh-provider'),
      JSON.stringify(adapters),
    )
  })

  test('a workspace on a host alias connects, and a second one on the same host is independent', async () => {
    const first = await createWorkspace({ provider: 'default', host: 'p1' })
    await waitForStatus(first.id, 'connected')
    const sessions = async () => ((await sshd.readLog()).match(/Starting session: /g) ?? []).length
    const sessionsBefore = await sessions()
    const second = await createWorkspace({ provider: 'default', host: 'prod-1', directory: '~/second' })
    await waitForStatus(second.id, 'connected')
    // Warm, the running stub registers the workspace on its attach socket: no exec, no shell.
    assert.equal(await sessions(), sessionsBefore, 'the second create started no session on the host')
    const root = await readFile(
      path.join(sshd.userHome, '.opencode-remote', 'state', 'workspaces', `${second.id}.json`),
      'utf8',
    )
    assert.match(root, /"root": "[^"]*\/second"/)

    const stubInfo = path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json')
    const pid = JSON.parse(await readFile(stubInfo, 'utf8')).pid
    // The fresh host got the stub from the installed package (no environment variable points at one).
    assert.ok(!Object.keys(local.env).some((k) => k.includes('STUB')), Object.keys(local.env).join(' '))
    const version = JSON.parse(await readFile(path.join(pkg.packageDir, 'package.json'), 'utf8')).version
    const sha = async (f) =>
      createHash('sha256')
        .update(await readFile(f))
        .digest('hex')
    assert.equal(
      await sha(path.join(sshd.userHome, '.opencode-remote', 'bin', version, 'opencode-remote-stub')),
      await sha(path.join(pkg.stubDir, `opencode-remote-stub-${version}-${hostArch}-linux`)),
      'the installed stub is the packaged one',
    )
    assert.ok(
      existsSync(path.join(sshd.userHome, 'opencode-workspaces', first.id)),
      'the default root was created',
    )
    assert.ok(existsSync(path.join(sshd.userHome, 'second')))

    await serve.client.delete(
      `/experimental/workspace/${first.id}?directory=${encodeURIComponent(local.projectDir)}`,
    )
    await waitForStatus(second.id, 'connected')
    assert.equal(
      JSON.parse(await readFile(stubInfo, 'utf8')).pid,
      pid,
      'the shared stub keeps serving the other one',
    )
    await serve.client.delete(
      `/experimental/workspace/${second.id}?directory=${encodeURIComponent(local.projectDir)}`,
    )
  })

  test("two workspaces of a project share one server; each session works in its own workspace's root", async () => {
    const a = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/shared-a' })
    const b = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/shared-b' })
    await Promise.all([waitForStatus(a.id, 'connected'), waitForStatus(b.id, 'connected')])
    assert.equal(sharedServers().length, 1, 'one opencode serve for both workspaces')
    const dir = `directory=${encodeURIComponent(local.projectDir)}`
    const sessions = {}
    for (const ws of [a, b]) {
      sessions[ws.id] = await serve.client.post(
        `/session?workspace=${ws.id}&${dir}`,
        {},
        { timeoutMs: 60_000 },
      )
      assert.equal(sessions[ws.id].workspaceID, ws.id)
    }
    // What the control plane republishes (and the TUI shows) while both turns run at once; each tool
    // call must find its own session's workspace.
    const events = watchSessionEvents()
    await Promise.all(
      [a, b].map((ws) =>
        serve.client.post(
          `/session/${sessions[ws.id].id}/message?workspace=${ws.id}&${dir}`,
          {
            model: { providerID: 'fake', modelID: 'local-m' },
            parts: [
              { type: 'text', text: `CALL_TOOL:write {"filePath":"where.txt","content":"${ws.id}\\n"}` },
            ],
          },
          { timeoutMs: 120_000, retries: 0 },
        ),
      ),
    )
    for (const [ws, root] of [
      [a, 'shared-a'],
      [b, 'shared-b'],
    ]) {
      await waitForMessages(
        serve,
        sessions[ws.id].id,
        (ms) => ms.flatMap((m) => m.parts).some((p) => p.type === 'tool' && p.state?.status === 'completed'),
        60_000,
      )
      assert.equal((await readFile(path.join(sshd.userHome, root, 'where.txt'), 'utf8')).trim(), ws.id)
      // The tools' descriptions name no host (one server, many hosts): the system prompt names it.
      const asked = llm.requests.filter((r) =>
        JSON.stringify(r).includes(
          `CALL_TOOL:write {\\"filePath\\":\\"where.txt\\",\\"content\\":\\"${ws.id}`,
        ),
      )
      assert.ok(asked.length > 0, 'the model was asked')
      for (const request of asked)
        assert.match(
          JSON.stringify(request.messages?.filter((m) => m.role === 'system')),
          new RegExp(
            `SSH workspace: its files and commands are on the remote host prod-1, in [^"]*/${root}\\.`,
          ),
        )
    }
    // (The control plane also publishes its own replays of a workspace's events, untagged.)
    const seen = (await events.stop()).filter((e) => e.workspace !== undefined)
    for (const ws of [a, b]) {
      const mine = seen.filter((e) => e.session === sessions[ws.id].id)
      assert.ok(mine.length > 0, `events of ${ws.id}'s session reached the control plane`)
      assert.deepEqual(
        mine.filter((e) => e.workspace !== ws.id),
        [],
        `the events of ${ws.id}'s session are tagged with it alone`,
      )
    }
    // The control plane's copy of each session came through its own workspace's sync only.
    const listed = await serve.client.get(`/experimental/session?${dir}&limit=1000`).catch(() => null)
    const known = Array.isArray(listed) ? listed : (listed?.items ?? listed?.data ?? [])
    for (const ws of [a, b]) {
      const copies = known.filter((s) => s.id === sessions[ws.id].id)
      assert.deepEqual(
        copies.map((s) => s.workspaceID),
        [ws.id],
        `the control plane holds session ${sessions[ws.id].id} once, in ${ws.id}: ${JSON.stringify(known.map((s) => [s.id, s.workspaceID]))}`,
      )
    }

    // The server stays for the workspace still open, and goes with the last one.
    await serve.client.delete(`/experimental/workspace/${a.id}?${dir}`)
    await waitForStatus(b.id, 'connected')
    assert.equal(sharedServers().length, 1)
    await serve.client.delete(`/experimental/workspace/${b.id}?${dir}`)
    await until(() => sharedServers().length === 0, 'the shared server to stop with its last workspace')
  })

  test('a create on a host that refuses connections fails with its name and leaves nothing behind', async () => {
    const serversBefore = sharedServers().length
    const failed = await createWorkspace({ provider: 'down', host: 'lab-box' }).then(
      () => assert.fail('the create succeeded'),
      (error) => error,
    )
    assert.ok(failed.status >= 400, failed.message)
    assert.match(failed.message, /Creating workspace on 'lab-box' failed: Host 'lab-box' is unreachable/)
    assert.doesNotMatch(failed.message, /remote run|reinstall|127\.0\.0\.1/)
    const listed = await serve.client.get(
      `/experimental/workspace?directory=${encodeURIComponent(local.projectDir)}`,
    )
    assert.deepEqual(
      listed.filter((w) => w.extra?.host === 'lab-box'),
      [],
      'OpenCode lists no workspace for the failed create',
    )
    const leases = path.join(local.env.XDG_STATE_HOME, 'opencode-remote', 'leases.json')
    const held = existsSync(leases) ? Object.values(JSON.parse(await readFile(leases, 'utf8'))) : []
    assert.deepEqual(
      held.filter((l) => l.host === 'lab-box'),
      [],
      'no lease is held',
    )
    assert.equal(sharedServers().length, serversBefore, 'no workspace server was left running')
  })

  test('first_available skips a host that does not answer; a host named with a provider must be in it', async () => {
    const ws = await createWorkspace({ provider: 'mixed' })
    try {
      const leases = path.join(local.env.XDG_STATE_HOME, 'opencode-remote', 'leases.json')
      const lease = JSON.parse(await readFile(leases, 'utf8'))[ws.id]
      assert.equal(lease.host, 'alt-1', JSON.stringify(lease))
    } finally {
      await serve.client.delete(
        `/experimental/workspace/${ws.id}?directory=${encodeURIComponent(local.projectDir)}`,
      )
    }
    const wrong = await createWorkspace({ provider: 'down', host: 'p1' }).then(
      () => assert.fail('the create succeeded'),
      (error) => error,
    )
    assert.match(wrong.message, /at `host`\. Name one of the hosts of provider 'down' \(lab-box\)/)
  })

  test('a session in the workspace writes, reads and greps files on the host, not locally', async () => {
    const ws = await createWorkspace({ provider: 'default', labels: ['linux'], directory: '~/app' })
    await waitForStatus(ws.id, 'connected')
    const q = `workspace=${ws.id}&directory=${encodeURIComponent(local.projectDir)}`
    const session = await serve.client.post(`/session?${q}`, {}, { timeoutMs: 60_000 })
    assert.equal(session.workspaceID, ws.id)
    const marker = `ws-proof-${Date.now()}`
    const steps = [
      `CALL_TOOL:write {"filePath":"notes/proof.txt","content":"${marker}\\n"}`,
      'CALL_TOOL:bash {"command":"cat notes/proof.txt","description":"show it"}',
      `CALL_TOOL:grep {"pattern":"${marker}"}`,
    ]
    for (const text of steps) {
      await serve.client.post(
        `/session/${session.id}/message?${q}`,
        { model: { providerID: 'fake', modelID: 'local-m' }, parts: [{ type: 'text', text }] },
        { timeoutMs: 120_000, retries: 0 },
      )
    }
    const messages = await waitForMessages(
      serve,
      session.id,
      (ms) =>
        ms.flatMap((m) => m.parts).filter((p) => p.type === 'tool' && p.state?.status === 'completed')
          .length >= 3,
      60_000,
    )
    const tools = messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool'))
    assert.deepEqual(
      tools.map((p) => [p.tool, p.state.status]),
      [
        ['write', 'completed'],
        ['bash', 'completed'],
        ['grep', 'completed'],
      ],
    )
    // The workspace's own server works through OpenCode (above), but not for another local user who
    // finds its port: it has a password only the control plane knows.
    const log = await sharedServerLog()
    // The last start's address (the log is kept across the server's starts).
    const url = [...log.matchAll(/listening on (http:\/\/127\.0\.0\.1:\d+)/g)].at(-1)?.[1]
    assert.ok(url, log)
    assert.doesNotMatch(log, /server is unsecured/)
    const direct = await fetch(`${url}/session`, { signal: AbortSignal.timeout(10_000) })
    assert.equal(direct.status, 401)
    // Nothing of the workspace server acts on the local project tree it runs in.
    const config = await serve.client.get(`/config?${q}`)
    assert.deepEqual(
      [config.snapshot, config.lsp, config.formatter],
      [false, false, false],
      'no snapshots, language servers or formatters on the local tree',
    )
    assert.equal(tools[1].state.output.trim(), marker, 'bash cat ran on the host')
    assert.match(tools[2].state.output, /Found 1 match/)
    assert.equal(
      (await readFile(path.join(sshd.userHome, 'app', 'notes', 'proof.txt'), 'utf8')).trim(),
      marker,
    )
    const { stdout: localHits } = await run('grep', ['-rl', marker, local.root]).catch(() => ({ stdout: '' }))
    const localFiles = localHits
      .split('\n')
      .filter((f) => f && !/\.db(-wal|-shm)?$/.test(f) && !f.includes('/log/') && !f.endsWith('/serve.log'))
    assert.deepEqual(localFiles, [], 'the file exists only on the host (session records and logs aside)')

    // Cut every SSH connection while the workspace is open: the tunnel comes back for the next tool call.
    await sshd.dropSessions()
    await serve.client.post(
      `/session/${session.id}/message?${q}`,
      {
        model: { providerID: 'fake', modelID: 'local-m' },
        parts: [{ type: 'text', text: 'CALL_TOOL:bash {"command":"echo after-drop","description":"probe"}' }],
      },
      { timeoutMs: 120_000, retries: 0 },
    )
    const after = await waitForMessages(
      serve,
      session.id,
      (ms) =>
        ms
          .flatMap((m) => m.parts)
          .some(
            (p) =>
              p.type === 'tool' &&
              p.state?.input?.command === 'echo after-drop' &&
              p.state.status !== 'running' &&
              p.state.status !== 'pending',
          ),
      60_000,
    )
    const probe = after.flatMap((m) => m.parts).find((p) => p.state?.input?.command === 'echo after-drop')
    assert.equal(probe.state.status, 'completed', JSON.stringify(probe.state))
    assert.equal(probe.state.output.trim(), 'after-drop')
    await serve.client.delete(
      `/experimental/workspace/${ws.id}?directory=${encodeURIComponent(local.projectDir)}`,
    )
  })

  test('after OpenCode restarts, the workspace server comes back from its lease and the session goes on', async () => {
    const ws = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/revived' })
    await waitForStatus(ws.id, 'connected')
    const { session, say } = await openSession(ws)
    await say('CALL_TOOL:write {"filePath":"before.txt","content":"written before the restart\\n"}')
    const serversBefore = sharedServers()
    assert.equal(
      serversBefore.length,
      1,
      "one server runs the project's workspaces " +
        serversBefore
          .map(
            (pid) =>
              readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ') +
              ' ppid=' +
              readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[3],
          )
          .join(' | '),
    )

    // OpenCode dies without cleaning up (SIGKILL of its main process only): its workspace server must
    // not be left running.
    await killOpencode()
    await startOpencodeAgain()
    await waitForStatus(ws.id, 'connected', 60_000)

    await say('CALL_TOOL:bash {"command":"cat before.txt","description":"after restart"}')
    const tools = await toolsOnceBashCompleted(session)
    assert.deepEqual(
      tools.map((p) => [p.tool, p.state.status]),
      [
        ['write', 'completed'],
        ['bash', 'completed'],
      ],
      'the session kept its first turn and ran the second on the host',
    )
    assert.equal(tools[1].state.output.trim(), 'written before the restart')
    assert.equal(sharedServers().length, 1, 'exactly one server again')
    await serve.client.delete(
      `/experimental/workspace/${ws.id}?directory=${encodeURIComponent(local.projectDir)}`,
    )
  })

  test('a restarted OpenCode and a second workspace make no new SSH login: the sharing helper holds it', async () => {
    const logins = async () => ((await sshd.readLog()).match(/Accepted publickey for /g) ?? []).length
    const ws = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/shared-link' })
    await waitForStatus(ws.id, 'connected')
    const { session, say } = await openSession(ws)
    await say('CALL_TOOL:write {"filePath":"one.txt","content":"written through the helper\\n"}')
    const loginsBefore = await logins()

    const second = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/shared-link-2' })
    await waitForStatus(second.id, 'connected')
    await killOpencode()
    await startOpencodeAgain()
    await waitForStatus(ws.id, 'connected', 60_000)
    await say('CALL_TOOL:bash {"command":"cat one.txt","description":"after restart"}')
    const tools = await toolsOnceBashCompleted(session)
    assert.equal(tools.at(-1).state.output.trim(), 'written through the helper')
    assert.equal(
      await logins(),
      loginsBefore,
      'the second create, the restarted OpenCode and its workspace server all used the shared connection',
    )
    for (const id of [ws.id, second.id])
      await serve.client.delete(
        `/experimental/workspace/${id}?directory=${encodeURIComponent(local.projectDir)}`,
      )
  })

  test('a workspace from before servers were shared keeps its own server and sessions after a restart', async () => {
    const ws = await createWorkspace({ provider: 'default', host: 'p1', directory: '~/older' })
    await waitForStatus(ws.id, 'connected')
    const { session, say } = await openSession(ws)
    await say('CALL_TOOL:write {"filePath":"older.txt","content":"from the older version\\n"}')
    // An earlier version's database held one workspace's sessions: so must the one moved below.
    const open = await serve.client.get(
      `/experimental/workspace?directory=${encodeURIComponent(local.projectDir)}`,
    )
    assert.deepEqual(
      open.map((w) => w.id),
      [ws.id],
      'no other workspace is open',
    )
    await killOpencode()
    // What an earlier version left: the workspace's sessions in a database of its own.
    const state = path.join(local.env.XDG_STATE_HOME, 'opencode-remote')
    const [project] = readdirSync(path.join(state, 'projects'))
    const own = path.join(state, 'workspaces', ws.id)
    await mkdir(own, { recursive: true })
    for (const file of readdirSync(path.join(state, 'projects', project)).filter((f) =>
      f.startsWith('opencode.db'),
    ))
      await rename(path.join(state, 'projects', project, file), path.join(own, file))

    await startOpencodeAgain()
    await waitForStatus(ws.id, 'connected', 150_000) // its own server's cold start, on a loaded machine
    await say('CALL_TOOL:bash {"command":"cat older.txt","description":"after the upgrade"}')
    const tools = await toolsOnceBashCompleted(session)
    assert.deepEqual(
      tools.map((p) => [p.tool, p.state.status]),
      [
        ['write', 'completed'],
        ['bash', 'completed'],
      ],
    )
    assert.equal(tools[1].state.output.trim(), 'from the older version')
    const ownServer = readdirSync('/proc').filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .includes(`OPENCODE_DB=${path.join(own, 'opencode.db')}`)
      } catch {
        return false
      }
    })
    assert.equal(ownServer.length, 1, "the workspace's own server runs it, on its own database")
    await serve.client.delete(
      `/experimental/workspace/${ws.id}?directory=${encodeURIComponent(local.projectDir)}`,
    )
  })
})

/** A session in workspace `ws`, and a function that sends it one user message. */
async function openSession(ws) {
  const q = `workspace=${ws.id}&directory=${encodeURIComponent(local.projectDir)}`
  const session = await serve.client.post(`/session?${q}`, {}, { timeoutMs: 60_000 })
  const say = (text) =>
    serve.client.post(
      `/session/${session.id}/message?${q}`,
      { model: { providerID: 'fake', modelID: 'local-m' }, parts: [{ type: 'text', text }] },
      { timeoutMs: 120_000, retries: 0 },
    )
  return { session, say }
}

/** SIGKILL OpenCode's main process only (no clean-up): its workspace server must stop with it. */
async function killOpencode() {
  process.kill(serve.pid, 'SIGKILL')
  await until(() => sharedServers().length === 0, 'the workspace server to stop with OpenCode')
  await serve.stop()
}

/** Start OpenCode again after it died, and do what the TUI does then: sync loops start only when asked. */
async function startOpencodeAgain() {
  serve = await startServe(local.env, local.projectDir)
  await serve.client.post(`/sync/start?directory=${encodeURIComponent(local.projectDir)}`, {})
}

/** The session's tool parts, once a `bash` call in it has completed. */
async function toolsOnceBashCompleted(session) {
  const messages = await waitForMessages(
    serve,
    session.id,
    (ms) =>
      ms
        .flatMap((m) => m.parts)
        .some((p) => p.type === 'tool' && p.tool === 'bash' && p.state?.status === 'completed'),
    60_000,
  )
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool'))
}

/**
 * Pids of this lab's shared workspace servers (one per project; found by the sessions database in this
 * lab's own state directory, so another lab's servers on the machine never count).
 */
function sharedServers() {
  const database = `OPENCODE_DB=${path.join(local.env.XDG_STATE_HOME, 'opencode-remote', 'projects')}/`
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        return env.some((e) => e.startsWith(database)) && cmd.includes('serve')
      } catch {
        return false
      }
    })
}

/**
 * Follow the control plane's `/global/event` (what it republishes from its workspaces): each event
 * that names a session, with the workspace it is tagged with.
 */
function watchSessionEvents() {
  const seen = []
  const events = followGlobalEvents(serve.url, ({ workspace, payload }) => {
    const p = payload?.properties ?? {}
    const session = p.sessionID ?? p.info?.sessionID ?? p.part?.sessionID
    if (session) seen.push({ workspace, session, type: payload.type })
  })
  return {
    async stop() {
      await events.stop()
      return seen
    },
  }
}

/** The log of this lab's shared workspace server. */
async function sharedServerLog() {
  const projects = path.join(local.env.XDG_STATE_HOME, 'opencode-remote', 'projects')
  const [project] = readdirSync(projects)
  return readFile(path.join(projects, project, 'serve.log'), 'utf8')
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function until(check, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
