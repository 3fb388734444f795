// Secrets end to end: the stub token and an SSH password never appear in any process's arguments or
// environment (sampled from /proc while the real processes run: the remote host is a local Unix user, so
// its processes are visible here too), in logs, errors, tool output or what the model receives; key and
// token files are private; the stub refuses every wrong token the same way.
import assert from 'node:assert/strict'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { messageText as chatText, startFakeLlm } from './harness/fake-llm.mjs'
import { makeClient, makeOpencodeHome, opencodeBin, opencodePath } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'
import { recordSummary } from './support/summary.mjs'

const run = promisify(execFile)
const require = createRequire(import.meta.url)
const SAMPLER = fileURLToPath(new URL('./support/proc-sampler.mjs', import.meta.url))
const LOCAL_MODEL = { providerID: 'fake', modelID: 'local-m' }

let llm, sshd, local, pkg, api, workspace, wsClient

/** Tool calls in one turn: a read, what a command on the host can see of its processes and
 * environment, a search, and a read outside the root (the stub asks for permission first). */
const SECRETS_TOOLS = [
  { name: 'read', args: { filePath: 'notes.txt' } },
  {
    name: 'bash',
    args: { command: 'env; cat /proc/$PPID/cmdline; ps -o args= -u $(id -u)', description: 'look' },
  },
  { name: 'grep', args: { pattern: 'hello' } },
  { name: 'read', args: { filePath: '/etc/hostname' } },
]

/**
 * Sample every process's cmdline and environ every `intervalMs` until `stop()`, which resolves with what
 * was seen. A canary process proves short-lived processes are caught.
 */
async function startSampler(intervalMs = 2) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-sampler-'))
  const out = path.join(dir, 'seen.json')
  const child = spawn(process.execPath, [SAMPLER, out, String(intervalMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve)
    child.once('exit', () => reject(new Error('the sampler exited before it was ready')))
  })
  const canary = `ocr-canary-${randomBytes(6).toString('hex')}`
  await new Promise((resolve) => spawn('sh', ['-c', 'sleep 0.5', canary]).once('exit', resolve))
  return {
    async stop() {
      child.stdin.end()
      await exited
      const seen = JSON.parse(await readFile(out, 'utf8'))
      await rm(dir, { recursive: true, force: true })
      assert.ok(
        seen.cmdlines.some((c) => c.includes(canary)),
        'the sampler caught a 0.5 s process',
      )
      return seen
    },
  }
}

/** Every place a secret could leak to, as named texts. */
function processTexts(seen) {
  return [
    ...seen.cmdlines.map((text) => ({ where: 'a process command line', text })),
    ...seen.environs.map((text) => ({ where: 'a process environment', text })),
  ]
}

async function filesUnder(dir) {
  const out = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(path.join(entry.parentPath ?? entry.path, entry.name))
  }
  return out
}

/** The files under `dir` (binary-safe) as named texts. */
async function fileTexts(dir, label) {
  const texts = []
  for (const file of await filesUnder(dir)) {
    texts.push({ where: `${label} ${path.relative(dir, file)}`, text: await readFile(file, 'latin1') })
  }
  return texts
}

/** Fail naming where `secret` was found; returns how many texts were searched. */
function assertAbsent(secret, texts, what) {
  assert.ok(secret.length >= 8, `${what} is a real secret`)
  for (const { where, text } of texts) {
    assert.ok(!text.includes(secret), `${what} found in ${where}`)
  }
  return texts.length
}

function toolParts(messages) {
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool'))
}

const remoteState = (...p) => path.join(sshd.userHome, '.opencode-remote', ...p)
const readToken = async () => (await readFile(remoteState('run', 'stub.token'), 'utf8')).trim()
const modeOf = async (p) => (await stat(p)).mode & 0o777

before(async () => {
  ;[llm, sshd, pkg] = await Promise.all([
    startFakeLlm({
      responder: (body) =>
        body.tools?.length && chatText(body.messages.at(-1)) === 'SECRETS_TOOLS'
          ? { rule: 'secrets', toolCalls: SECRETS_TOOLS }
          : undefined,
    }),
    startSshd(),
    installPackedPackage(),
  ])
  local = await makeOpencodeHome(path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-secrets-')), 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`],
  })
  await sshd.writeClientSshFiles(local.home, { alias: 'box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({
      providers: {
        default: { strategy: 'first_available', hosts: [{ name: 'vault', ssh: { host: 'box' } }] },
      },
    }),
  )
  // This process is the control plane: the addon reads the local HOME, and the workspace server it
  // starts inherits this environment, as it would inherit OpenCode's.
  Object.assign(process.env, local.env)
  delete process.env.SSH_AUTH_SOCK
  api = require(pkg.api)
})

after(async () => {
  if (workspace) await api.removeWorkspace(workspace.id).catch(() => {})
  await sshd?.stop()
  await llm?.stop()
})

describe('the stub token', () => {
  const apiErrors = []

  test('a workspace bootstrap and tunnelled tool calls never show the token anywhere', async () => {
    const sampler = await startSampler()
    let seen, messages
    try {
      // What the ssh-provider adaptor does in OpenCode's `create`: bootstrap the stub, register the
      // root, start the workspace's own opencode serve in remote tools mode.
      const id = `wrk_secrets${randomBytes(4).toString('hex')}`
      workspace = await api.createWorkspace({
        id,
        provider: 'default',
        host: 'vault',
        directory: '~/app',
        env: { OPENCODE_WORKSPACE_ID: id },
        opencodeBin,
        pluginSpec: `file://${pkg.packageDir}`,
        projectDir: local.projectDir,
      })
      wsClient = makeClient(workspace.url, 60_000, workspace.headers)
      const session = await wsClient.post(`/session?directory=${encodeURIComponent(local.projectDir)}`, {})
      // Two turns: the write, then four calls at once (the fake LLM answers `SECRETS_TOOLS` so).
      const steps = ['CALL_TOOL:write {"filePath":"notes.txt","content":"hello\\n"}', 'SECRETS_TOOLS']
      for (const text of steps) {
        await wsClient.post(
          `/session/${session.id}/message?directory=${encodeURIComponent(local.projectDir)}`,
          { model: LOCAL_MODEL, parts: [{ type: 'text', text }] },
          { timeoutMs: 120_000, retries: 0 },
        )
      }
      messages = await wsClient.get(`/session/${session.id}/message`)

      // The in-process API on the same host: its refusals are errors the test collects.
      const options = { hosts: { vault: 'box' } }
      const place = { host: 'vault', workspace: 'api-ws', root: '~/api', options }
      const attempts = [
        () => api.remoteCall(place, 'fs/read', { path: 'missing.txt' }),
        () => api.remoteCall(place, 'fs/nope', {}),
        () => api.remoteCall(place, 'fs/read', { nope: 1 }),
        () => api.remoteCall({ ...place, workspace: '../x' }, 'fs/read', { path: 'a' }),
        () => api.remoteCall({ ...place, host: 'nope' }, 'fs/read', { path: 'a' }),
        () => api.remoteExec(place, { command: 'true', cwd: '/' }),
        () => api.remoteExec(place, { nope: true }),
        () => api.remoteReply(place, { requestId: 'per_nope', reply: 'once' }),
        () => api.createWorkspace({ id: 'wrk_x', provider: 'nope', pluginSpec: 'x' }),
      ]
      for (const attempt of attempts) {
        try {
          const value = await attempt()
          apiErrors.push({ where: 'an API answer', text: JSON.stringify(value) })
        } catch (error) {
          apiErrors.push({ where: `API error ${error.code}`, text: `${error.code} ${error.message}` })
        }
      }
    } finally {
      seen = await sampler.stop()
    }
    const tools = toolParts(messages)
    assert.deepEqual(
      tools.slice(0, 4).map((p) => [p.tool, p.state.status]),
      [
        ['write', 'completed'],
        ['read', 'completed'],
        ['bash', 'completed'],
        ['grep', 'completed'],
      ],
      JSON.stringify(tools.map((p) => p.state)),
    )
    assert.match(tools[2].state.output, /opencode-remote-stub/, 'bash saw the stub process')
    assert.ok(apiErrors.filter((e) => e.where.startsWith('API error')).length >= 5, JSON.stringify(apiErrors))

    const token = await readToken()
    assert.match(token, /^[0-9a-f]{64}$/)
    const stubInfo = JSON.parse(await readFile(remoteState('run', 'stub.json'), 'utf8'))
    // The sampler saw what matters: the stub, the shell lines run over SSH, the workspace server.
    assert.ok(
      seen.cmdlines.some((c) => c.includes('opencode-remote-stub\0serve')),
      'the stub',
    )
    assert.ok(
      seen.cmdlines.some((c) => c.startsWith('sh\0-c\0')),
      'a remote shell line',
    )
    assert.ok(
      seen.cmdlines.some((c) => c.includes('serve\0--port\0')),
      'the workspace server',
    )
    // The project's shared workspace server (its sessions database is in opencode-remote's state).
    assert.ok(seen.environs.some((e) => /\0?OPENCODE_DB=[^\0]*\/opencode-remote\/projects\//.test(e)))

    const texts = [
      ...processTexts(seen),
      ...(await fileTexts(remoteState('log'), 'the stub log')),
      { where: "sshd's log", text: await sshd.readLog() },
      ...(await fileTexts(local.root, 'local file')),
      { where: 'the requests the model received', text: JSON.stringify(llm.requests) },
      ...tools.map((p) => ({ where: `${p.tool} tool result`, text: JSON.stringify(p.state) })),
      ...apiErrors,
    ]
    assert.ok(
      texts.some((t) => t.where.startsWith('the stub log')),
      'the stub log was read',
    )
    assert.ok(
      texts.some((t) => t.where.endsWith('serve.log')),
      "the workspace server's log was read",
    )
    const searched = assertAbsent(token, texts, 'the stub token')
    // The API errors are for the model: no address, port, user or local path either.
    for (const { text } of apiErrors) {
      for (const secret of ['127.0.0.1', `:${sshd.port}`, sshd.user, local.home, `${stubInfo.port}`]) {
        assert.ok(!text.includes(secret), `"${secret}" leaked into: ${text}`)
      }
    }
    console.log(
      `# sampler: ${seen.passes} passes in ${seen.elapsedMs} ms (${(seen.elapsedMs / seen.passes).toFixed(1)} ms each), ` +
        `${seen.processes} processes, ${seen.cmdlines.length} command lines, ${seen.environs.length} environments; ` +
        `${searched} texts searched`,
    )
    recordSummary({
      kind: 'secret',
      name: 'stub token absent from argv/environ, logs, errors, tool output, model input (workspace)',
      ok: true,
      inputs: searched,
      userSees: 'no token',
    })
  })

  test('token, state and key files are private', async () => {
    let checked = 0
    const expectMode = async (file, mode, what) => {
      assert.equal(await modeOf(file), mode, `${what} is ${mode.toString(8)}`)
      checked++
    }
    const token = remoteState('run', 'stub.token')
    await expectMode(token, 0o600, 'the token')
    assert.equal((await stat(token)).uid, sshd.uid)
    for (const dir of ['', 'bin', 'run', 'log', 'state']) {
      await expectMode(remoteState(dir), 0o700, `~/.opencode-remote/${dir}`)
    }
    for (const file of await filesUnder(remoteState('log'))) {
      assert.equal((await modeOf(file)) & 0o077, 0, `${file} is private`)
      checked++
    }
    // Local: our state dir and the leases file (workspace, provider, host name, root: no secrets).
    const stateDir = path.join(local.state, 'opencode-remote')
    await expectMode(stateDir, 0o700, 'the local state dir')
    const leases = path.join(stateDir, 'leases.json')
    await expectMode(leases, 0o600, 'leases.json')
    const lease = JSON.parse(await readFile(leases, 'utf8'))[workspace.id]
    assert.deepEqual(Object.keys(lease).sort(), ['host', 'provider', 'root', 'sinceMs', 'workspace'])
    assert.ok(!JSON.stringify(lease).includes(await readToken()))
    recordSummary({
      kind: 'secret',
      name: 'token 0600, remote state dirs 0700, local state dir 0700, leases.json 0600',
      ok: true,
      inputs: checked,
    })
  })

  test('the stub refuses a missing or wrong token with one answer, in constant time', async () => {
    const token = await readToken()
    // The stub's Unix socket (this test runs as root, which may enter the remote user's 0700 directory).
    const { socket: socketPath } = JSON.parse(await readFile(remoteState('run', 'stub.json'), 'utf8'))
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const get = (authorization, route = '/global/health') =>
      new Promise((resolve, reject) => {
        const headers = authorization === undefined ? {} : { authorization }
        const started = process.hrtime.bigint()
        const req = http.get({ socketPath, path: route, headers, agent }, (res) => {
          const chunks = []
          res.on('data', (c) => chunks.push(c))
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              body: Buffer.concat(chunks).toString(),
              ns: Number(process.hrtime.bigint() - started),
            }),
          )
        })
        req.on('error', reject)
      })
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'a' ? 'b' : 'a') + s.slice(i + 1)
    const wrong = {
      'no header': undefined,
      'Basic scheme': `Basic ${token}`,
      'token without scheme': token,
      'empty token': 'Bearer ',
      'empty token, no space': 'Bearer',
      'short token': `Bearer ${token.slice(0, 8)}`,
      'token one byte short': `Bearer ${token.slice(0, -1)}`,
      'token one byte long': `Bearer ${token}0`,
      'first byte wrong': `Bearer ${flip(token, 0)}`,
      'last byte wrong': `Bearer ${flip(token, token.length - 1)}`,
      'token twice': `Bearer ${token} ${token}`,
    }
    const answers = {}
    for (const [name, authorization] of Object.entries(wrong)) {
      answers[name] = await get(authorization)
      // Unknown routes are refused the same way: no probing without the token.
      answers[`${name}, unknown route`] = await get(authorization, '/v1/nope')
    }
    const first = Object.values(answers)[0]
    assert.equal(first.status, 401)
    for (const [name, answer] of Object.entries(answers)) {
      assert.deepEqual([answer.status, answer.body], [401, first.body], name)
      assert.ok(!answer.body.includes(token.slice(0, 8)), name)
    }
    assert.equal((await get(`Bearer ${token}`)).status, 200, 'the right token is accepted')
    assert.equal((await get(`bearer ${token}`)).status, 200, 'the scheme is case-insensitive (RFC 7235)')

    // Timing: the comparison is subtle::ConstantTimeEq (stub/src/server.rs `require_token`), so a
    // wrong first byte and a wrong last byte take the same time. Measured interleaved, so load drifts
    // hit both alike; printed, not asserted (loopback noise is far larger than any byte-compare time).
    // At most 1500 pairs or 8 s, whichever comes first (a loaded machine answers slowly).
    const times = { first: [], last: [] }
    for (const until = Date.now() + 8000; times.first.length < 1500 && Date.now() < until; ) {
      times.first.push((await get(wrong['first byte wrong'])).ns)
      times.last.push((await get(wrong['last byte wrong'])).ns)
    }
    const rounds = times.first.length
    agent.destroy()
    const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] / 1000
    const fmt = (xs) =>
      `p10 ${pct(xs, 0.1).toFixed(0)} µs, median ${pct(xs, 0.5).toFixed(0)} µs, p90 ${pct(xs, 0.9).toFixed(0)} µs`
    console.log(`# refusal latency over ${rounds} requests each: first byte wrong: ${fmt(times.first)}`)
    console.log(`#                                            last byte wrong:  ${fmt(times.last)}`)
    console.log(`# median difference: ${(pct(times.last, 0.5) - pct(times.first, 0.5)).toFixed(1)} µs`)
    recordSummary({
      kind: 'secret',
      name: 'stub refuses missing/wrong tokens alike (401, same body); constant-time compare',
      ok: true,
      inputs: Object.keys(answers).length + 2 * rounds,
      userSees: `401 ${first.body}`,
    })
  })
})

describe('a password-only host', () => {
  test('setup --password-stdin never shows the password or the token, and the new key is private', async () => {
    const password = `pw-${randomBytes(12).toString('hex')}`
    const server = await startSshd({ extraConfig: ['PasswordAuthentication yes'] })
    try {
      const chpasswd = spawnSync('chpasswd', { input: `${server.user}:${password}\n` })
      assert.equal(chpasswd.status, 0, String(chpasswd.stderr))
      const home = await mkdtemp(path.join(os.tmpdir(), 'ocr-secrets-pw-'))
      await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 })
      await writeFile(path.join(home, '.ssh', 'known_hosts'), server.knownHostsLine + '\n')
      await writeFile(
        path.join(home, '.ssh', 'config'),
        `Host pw\n  HostName 127.0.0.1\n  Port ${server.port}\n  User ${server.user}\n`,
      )
      await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
      const hostsFile = path.join(home, 'config', 'opencode', 'hosts.json')
      await writeFile(hostsFile, JSON.stringify({ hosts: { pw: 'pw' } }))
      const env = {
        PATH: opencodePath(),
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, 'config'),
        XDG_STATE_HOME: path.join(home, 'state'),
        ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
          ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
          : {}),
      }
      const setup = (input) =>
        new Promise((resolve) => {
          const child = execFile(
            process.execPath,
            [pkg.bin, 'setup', 'pw', '--json', '--password-stdin'],
            { env },
            (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stdout, stderr }),
          )
          child.stdin.end(input)
        })

      const sampler = await startSampler()
      const wrongPassword = `wrong-${randomBytes(12).toString('hex')}`
      const refused = await setup(`${wrongPassword}\n`)
      const first = await setup(`${password}\n`)
      const seen = await sampler.stop()
      assert.equal(refused.code, 1, 'a wrong password is refused')
      assert.match(refused.stderr, /AUTH_FAILED/)
      assert.equal(first.code, 0, first.stderr)
      assert.match(first.stderr, /installed a new key for pw/)
      assert.ok(
        seen.cmdlines.some((c) => c.includes(`${pkg.bin}\0setup\0pw`)),
        'the sampler saw setup run',
      )

      const remoteHome = path.join(server.userHome, '.opencode-remote')
      const token = (await readFile(path.join(remoteHome, 'run', 'stub.token'), 'utf8')).trim()
      const texts = [
        ...processTexts(seen),
        ...[refused, first].flatMap((r, i) => [
          { where: `setup ${i} stdout`, text: r.stdout },
          { where: `setup ${i} stderr`, text: r.stderr },
        ]),
        { where: "sshd's log", text: await server.readLog() },
        ...(await fileTexts(path.join(remoteHome, 'log'), 'the stub log')),
        ...(await fileTexts(home, 'local file')),
      ]
      let searched = assertAbsent(password, texts, 'the password')
      searched += assertAbsent(wrongPassword, texts, 'the wrong password')
      searched += assertAbsent(token, texts, 'the stub token')
      // Nothing on the remote keeps the password either (authorized_keys, job files, logs).
      const remoteTexts = await fileTexts(server.userHome, 'remote file')
      assertAbsent(password, remoteTexts, 'the password')

      const key = path.join(home, '.ssh', 'opencode-remote_pw')
      assert.equal(await modeOf(key), 0o600, 'the generated key is 0600')
      assert.equal(await modeOf(path.join(home, '.ssh')), 0o700)
      assert.match(await readFile(key, 'utf8'), /BEGIN OPENSSH PRIVATE KEY/)
      assert.equal(await modeOf(path.join(remoteHome, 'run', 'stub.token')), 0o600)
      assert.equal((await modeOf(path.join(server.userHome, '.ssh', 'authorized_keys'))) & 0o022, 0)
      assert.ok(!existsSync(path.join(home, '.ssh', 'opencode-remote_pw.tmp')))
      console.log(
        `# password setup: sampler ${seen.passes} passes in ${seen.elapsedMs} ms; ${searched} texts searched`,
      )
      recordSummary({
        kind: 'secret',
        name: 'password (right and wrong) and token absent from argv/environ, output, logs, files; key 0600',
        ok: true,
        inputs: searched,
        userSees: 'AUTH_FAILED without the password, then "installed a new key"',
      })
    } finally {
      await server.stop()
    }
  })
})
