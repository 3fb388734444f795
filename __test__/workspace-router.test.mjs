// The workspace router: what the control plane forwards to an SSH workspace goes where it belongs. Through
// the real OpenCode control plane (OPENCODE_EXPERIMENTAL_WORKSPACES=1) and `?workspace=<id>`: session
// routes still reach the workspace's own server (and sync back), `/path` is the host's, undo and `!` shell
// commands are refused with a message that says why (as an error body and as a TUI toast), and the router
// itself answers nobody without the workspace's credentials.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import { mkdir, mkdtemp, realpath, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { startFakeLlm } from './harness/fake-llm.mjs'
import { followGlobalEvents, makeOpencodeHome, startServe, waitForMessages } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { connectWebSocket } from './harness/ws.mjs'
import { installPackedPackage } from './support/package.mjs'

const execFileAsync = promisify(execFile)
const HOST = 'prod-1'
let llm, sshd, local, serve, pkg, ws, q

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

before(async () => {
  ;[llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  local = await makeOpencodeHome(path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-router-')), 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`],
    env: { OPENCODE_EXPERIMENTAL_WORKSPACES: '1' },
  })
  await sshd.writeClientSshFiles(local.home, { alias: 'box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { [HOST]: 'box' } }),
  )
  serve = await startServe(local.env, local.projectDir)
  ws = await serve.client.post(
    `/experimental/workspace?directory=${encodeURIComponent(local.projectDir)}`,
    { type: 'ssh-provider', extra: { host: HOST, directory: '~/routed' } },
    { timeoutMs: 120_000, retries: 0 },
  )
  await waitForStatus(ws.id, 'connected')
  q = `workspace=${ws.id}&directory=${encodeURIComponent(local.projectDir)}`
})

after(async () => {
  await serve?.stop()
  await sshd?.stop()
  await llm?.stop()
})

describe('the workspace router', () => {
  test('/path is the host’s: its home, and the workspace root as worktree and directory', async () => {
    const root = await realpath(path.join(sshd.userHome, 'routed'))
    const paths = await serve.client.get(`/path?${q}`)
    assert.equal(paths.directory, root, JSON.stringify(paths))
    assert.equal(paths.worktree, root)
    assert.equal(paths.home, await realpath(sshd.userHome))
  })

  test('session routes still reach the workspace’s server, and its events stream through', async () => {
    const events = await fetch(`${serve.url}/event?${q}`, { signal: AbortSignal.timeout(15_000) })
    assert.equal(events.status, 200)
    const reader = events.body.getReader()
    const first = new TextDecoder().decode((await reader.read()).value)
    assert.match(first, /server\.connected/, 'the first event arrives at once, not buffered')
    await reader.cancel()

    const session = await serve.client.post(`/session?${q}`, {}, { timeoutMs: 60_000 })
    assert.equal(session.workspaceID, ws.id)
    await serve.client.post(
      `/session/${session.id}/message?${q}`,
      {
        model: { providerID: 'fake', modelID: 'local-m' },
        parts: [{ type: 'text', text: 'CALL_TOOL:bash {"command":"pwd","description":"where"}' }],
      },
      { timeoutMs: 120_000, retries: 0 },
    )
    // Read from the control plane's replica: the sync loop brought the turn back.
    const messages = await waitForMessages(
      serve,
      session.id,
      (ms) => ms.flatMap((m) => m.parts).some((p) => p.type === 'tool' && p.state?.status === 'completed'),
      60_000,
    )
    const tool = messages.flatMap((m) => m.parts).find((p) => p.type === 'tool')
    assert.equal(tool.state.output.trim(), await realpath(path.join(sshd.userHome, 'routed')))
  })

  test('undo, redo and `!` shell commands are refused with why, also as a toast for the TUI', async () => {
    const session = await serve.client.post(`/session?${q}`, {}, { timeoutMs: 60_000 })
    await serve.client.post(
      `/session/${session.id}/message?${q}`,
      { model: { providerID: 'fake', modelID: 'local-m' }, parts: [{ type: 'text', text: 'hello' }] },
      { timeoutMs: 120_000, retries: 0 },
    )
    const [user] = await serve.client.get(`/session/${session.id}/message?${q}`)
    const toasts = await collectToasts()
    const refused = async (route, body) => {
      const error = await serve.client.post(`/session/${session.id}/${route}?${q}`, body).then(
        () => assert.fail(`${route} was not refused`),
        (e) => e,
      )
      assert.equal(error.status, 400, error.message)
      assert.equal(error.body.name, 'BadRequest')
      return error.body.data.message
    }
    const revert = await refused('revert', { messageID: user.info.id })
    assert.match(revert, /Undo and revert are not available in an SSH workspace yet/)
    assert.match(revert, new RegExp(`not of ${HOST}\\. Use git on the host`))
    assert.equal(await refused('unrevert', {}), revert)
    const shell = await refused('shell', { agent: 'build', command: 'ls' })
    assert.match(shell, new RegExp(`\`!\` shell commands are not available.*its bash tool runs on ${HOST}`))

    const shown = await toasts.until((list) => list.length >= 3)
    assert.deepEqual(
      shown.map((t) => [t.workspace, t.variant, t.message]),
      [
        [ws.id, 'error', revert],
        [ws.id, 'error', revert],
        [ws.id, 'error', shell],
      ],
    )
    const after = await serve.client.get(`/session/${session.id}?${q}`)
    assert.equal(after.revert, undefined, 'nothing was reverted')
  })

  test('the file list, file content, find and git state are the host’s, never the local tree’s', async () => {
    // On the host, as the remote user: a git repository on its own branch, with a committed file and a change.
    await onHost(
      'cd ~/routed && git init -q -b host-branch . && printf "host line\\n" > on-host.txt && ' +
        'git add on-host.txt && git -c user.name=t -c user.email=t@e commit -qm one && ' +
        'printf "host line\\nHOSTMARK changed\\n" > on-host.txt',
    )
    // Locally, in the project directory the workspace server runs in: a file the answers must not show.
    await writeFile(path.join(local.projectDir, 'only-local.txt'), 'LOCALMARK\n')

    const names = (await serve.client.get(`/file?path=.&${q}`)).map((n) => n.name)
    assert.ok(names.includes('on-host.txt'), JSON.stringify(names))
    assert.ok(!names.includes('only-local.txt'), JSON.stringify(names))
    const content = await serve.client.get(`/file/content?path=on-host.txt&${q}`)
    assert.equal(content.content, 'host line\nHOSTMARK changed', 'OpenCode trims the content it shows')
    const localOnly = await serve.client.get(`/file/content?path=only-local.txt&${q}`)
    assert.equal(
      localOnly.content,
      '',
      'the host has no such file (OpenCode answers a missing file as empty)',
    )

    const found = await serve.client.get(`/find/file?query=on-host&${q}`)
    assert.deepEqual(found.slice(0, 1), ['on-host.txt'])
    assert.deepEqual(await serve.client.get(`/find/file?query=only-local&${q}`), [])
    const text = await serve.client.get(`/find?pattern=HOSTMARK&${q}`)
    assert.equal(text.length, 1, JSON.stringify(text))
    assert.equal(text[0].path.text, 'on-host.txt')
    assert.deepEqual(await serve.client.get(`/find?pattern=LOCALMARK&${q}`), [])

    const vcs = await serve.client.get(`/vcs?${q}`)
    assert.equal(vcs.branch, 'host-branch', JSON.stringify(vcs))
    const status = await serve.client.get(`/vcs/status?${q}`)
    assert.deepEqual(
      status.map((f) => [f.file, f.status]),
      [['on-host.txt', 'modified']],
      JSON.stringify(status),
    )
  })

  test('a file attached with @ carries the host’s text, not the local copy’s', async () => {
    await onHost(
      'mkdir -p ~/routed/att && printf "HOSTATTACH one\\nHOSTATTACH two\\n" > ~/routed/att/notes.md',
    )
    await mkdir(path.join(local.projectDir, 'att'), { recursive: true })
    await writeFile(path.join(local.projectDir, 'att', 'notes.md'), 'LOCALATTACH\n')
    const session = await serve.client.post(`/session?${q}`, {}, { timeoutMs: 60_000 })
    const file = path.join(local.projectDir, 'att', 'notes.md')
    const before = llm.requests.length
    // What the TUI sends for `@att/notes.md`: a file part with the local path it listed.
    await serve.client.post(
      `/session/${session.id}/message?${q}`,
      {
        model: { providerID: 'fake', modelID: 'local-m' },
        parts: [
          { type: 'text', text: 'summarise the notes' },
          { type: 'file', mime: 'text/plain', url: `file://${file}`, filename: 'att/notes.md' },
        ],
      },
      { timeoutMs: 120_000, retries: 0 },
    )
    const sent = JSON.stringify(llm.requests.slice(before).map((r) => r.messages))
    assert.match(sent, /HOSTATTACH one/, 'the model got the host’s text')
    assert.doesNotMatch(sent, /LOCALATTACH/, 'and nothing of the local copy')
    const stored = (await serve.client.get(`/session/${session.id}/message?${q}`))
      .flatMap((m) => m.parts)
      .filter((p) => p.type === 'text' && p.synthetic)
      .map((p) => p.text)
      .join('\n')
    assert.match(stored, /HOSTATTACH two/)
    assert.doesNotMatch(stored, /LOCALATTACH/)
  })

  test('the terminal is a shell on the host: its user and directory, resize and exit (`pty.exited` reaches the apps)', async () => {
    const exits = await collectEvents('pty.exited')
    const pty = await serve.client.post(`/pty?${q}`, { title: 'host shell' })
    assert.equal(pty.status, 'running')
    assert.equal(pty.cwd, await realpath(path.join(sshd.userHome, 'routed')))
    await serve.client.put(`/pty/${pty.id}?${q}`, { size: { rows: 33, cols: 101 } })
    const { ticket } = await serve.client.post(
      `/pty/${pty.id}/connect-token?${q}`,
      {},
      { headers: { 'x-opencode-ticket': '1' } },
    )
    const socket = await connectWebSocket(
      `${serve.url.replace('http', 'ws')}/pty/${pty.id}/connect?ticket=${ticket}&cursor=0&${q}`,
    )
    socket.send('echo "I am $(whoami) in $(pwd), size $(stty size)"; exit 3\r')
    let output = ''
    let closed = null
    while (!closed) {
      const message = await socket.next(20_000)
      if (message.type === 'text') output += message.data
      if (message.type === 'close') closed = message
    }
    const root = await realpath(path.join(sshd.userHome, 'routed'))
    assert.match(output, new RegExp(`I am ${sshd.user} in ${root}, size 33 101`), output)
    assert.equal(closed.code, 1000, 'closed normally when the shell exits')
    const running = await serve.client.get(`/pty?${q}`)
    assert.ok(!running.some((p) => p.id === pty.id), 'an exited terminal is no longer listed')
    // The apps close a terminal's tab on this event; the stub's terminals reach OpenCode's bus through
    // the router.
    const exited = await exits.until((list) => list.some((e) => e.id === pty.id))
    assert.deepEqual(
      exited.filter((e) => e.id === pty.id),
      [{ workspace: ws.id, id: pty.id, exitCode: 3 }],
    )
  })

  test('the router answers nobody without the workspace’s credentials', async () => {
    const routers = await routerPorts()
    assert.equal(routers.length, 1, `one workspace, one router: ${routers}`)
    const url = `http://127.0.0.1:${routers[0]}/path`
    const wrong = `Basic ${Buffer.from('opencode:not-the-password').toString('base64')}`
    for (const headers of [{}, { authorization: wrong }]) {
      const answer = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) })
      assert.equal(answer.status, 401)
      assert.equal(await answer.text(), '')
    }
    // With the workspace server's password (what the control plane sends), the same request is answered.
    const right = `Basic ${Buffer.from(`opencode:${serverPassword()}`).toString('base64')}`
    const answer = await fetch(url, {
      headers: { authorization: right },
      signal: AbortSignal.timeout(10_000),
    })
    assert.equal(answer.status, 200)
    assert.equal((await answer.json()).directory, await realpath(path.join(sshd.userHome, 'routed')))
  })
})

/** Runs `command` on the SSH host as the remote user. */
async function onHost(command) {
  const { stdout } = await execFileAsync('ssh', sshd.sshArgs([sshd.host, command]), { timeout: 30_000 })
  return stdout
}

/** Collect the `tui.toast.show` events the control plane publishes, as the TUI receives them. */
/** The toasts the control plane publishes from now on, with the workspace they came from. */
const collectToasts = () => collectEvents('tui.toast.show')

/**
 * The control plane's global events of `type` from now on (what the TUI and the apps follow), each as its
 * properties plus the workspace it came from.
 */
async function collectEvents(type) {
  const shown = []
  const events = followGlobalEvents(serve.url, (event) => {
    if (event.payload?.type === type) shown.push({ workspace: event.workspace, ...event.payload.properties })
  })
  // From the stream's first event on, no toast can be missed.
  await events.connected
  return {
    async until(check, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      while (!check(shown) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      await events.stop()
      return shown
    },
  }
}

/**
 * Loopback ports the control plane's processes listen on that answer like an OpenCode server without
 * credentials (401, Basic challenge): its routers. The control plane's own port, the workspace servers
 * (other processes) and the stub tunnels (a JSON 401 without a challenge) are left out.
 */
async function routerPorts() {
  const own = Number(new URL(serve.url).port)
  const ports = treeOf(serve.pid)
    .filter((pid) => !isWorkspaceServer(pid))
    .flatMap(listeningPorts)
    .filter((port) => port !== own)
  const routers = []
  for (const port of ports) {
    const answer = await fetch(`http://127.0.0.1:${port}/path`, { signal: AbortSignal.timeout(5_000) }).catch(
      () => undefined,
    )
    if (answer?.status === 401 && /^Basic/.test(answer.headers.get('www-authenticate') ?? ''))
      routers.push(port)
  }
  return routers
}

/** The project's shared workspace server: its sessions database is in opencode-remote's state. */
function isWorkspaceServer(pid) {
  return environ(pid).some((e) => e.startsWith('OPENCODE_DB=') && e.includes('/opencode-remote/projects/'))
}

/** The workspace server's password, from its environment (a test reading its own child's). */
function serverPassword() {
  const pid = treeOf(serve.pid).find(isWorkspaceServer)
  assert.ok(pid, 'the workspace server runs')
  return environ(pid)
    .find((e) => e.startsWith('OPENCODE_SERVER_PASSWORD='))
    .slice('OPENCODE_SERVER_PASSWORD='.length)
}

function environ(pid) {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
  } catch {
    return []
  }
}

/** `pid` and all its descendants. */
function treeOf(pid) {
  const parents = new Map()
  for (const p of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      parents.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {}
  }
  const tree = [pid]
  for (let i = 0; i < tree.length; i++)
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child)
  return tree
}

/** TCP ports on 127.0.0.1 that `pid` listens on. */
function listeningPorts(pid) {
  const inodes = new Set()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
        if (inode) inodes.add(inode)
      } catch {}
    }
    return readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((c) => c[3] === '0A' && c[1]?.startsWith('0100007F:') && inodes.has(c[9]))
      .map((c) => parseInt(c[1].split(':')[1], 16))
  } catch {
    return []
  }
}
