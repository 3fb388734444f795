// Remote tools mode end to end: the packed plugin inside the real `opencode serve` replaces OpenCode's file
// and shell tools; a fake LLM calls them; the files live in the home of the sshd's own Unix user, never
// locally. Outputs are compared with the OpenCode 1.18.33 built-ins' formats, and paths outside the
// workspace root go through OpenCode's permission prompts (answered over the HTTP API).
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, readFile, realpath } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { messageText, startFakeLlm } from './harness/fake-llm.mjs'
import { makeOpencodeHome, startServe } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const HOST = 'box'
const WORKSPACE = 't1'
const LOCAL_MODEL = { providerID: 'fake', modelID: 'local-m' }
/** OpenCode offers apply_patch (instead of edit and write) to GPT-5-like model ids only. */
const PATCH_MODEL = { providerID: 'fake', modelID: 'gpt-5-fake' }
const TURN_TIMEOUT_MS = 30_000

let llm, sshd, local, serve, remoteRoot, sessionID

before(async () => {
  const [fake, server, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  ;[llm, sshd] = [fake, server]
  const options = { hosts: { [HOST]: HOST }, remote: { host: HOST, root: '~/proj', workspace: WORKSPACE } }
  const fakeModel = { name: 'Fake GPT', tool_call: true, limit: { context: 100_000, output: 4096 } }
  local = await makeOpencodeHome(await mkdtemp(path.join(os.tmpdir(), 'ocr-tools-')), {
    llm,
    plugins: [[`file://${pkg.packageDir}`, options]],
    // Headless serve: a prompt waits for a reply over HTTP (the tests answer it).
    extraConfig: {
      permission: { external_directory: 'ask' },
      provider: { fake: { models: { 'gpt-5-fake': fakeModel } } },
    },
  })
  await sshd.writeClientSshFiles(local.home, { alias: HOST })
  serve = await startServe(local.env, local.projectDir)
  sessionID = (await serve.client.post('/session', {})).id
  // The stub creates the root on first use; its canonical path is what the tools show.
  await callTool('bash', { command: 'true' })
  remoteRoot = await realpath(path.join(sshd.userHome, 'proj'))
})

after(async () => {
  await serve?.stop()
  await sshd?.stop()
  await llm?.stop()
})

/** One user turn (blocks until the turn is over, including tool calls and permission prompts). */
function prompt(text, model = LOCAL_MODEL) {
  return serve.client.post(
    `/session/${sessionID}/message`,
    { model, parts: [{ type: 'text', text }] },
    { timeoutMs: TURN_TIMEOUT_MS, retries: 0 },
  )
}

/** The tool result the fake LLM was sent after request number `from` (what the model saw). */
function seenByModel(from) {
  const request = llm.requests.slice(from).findLast((r) => r.messages?.at(-1)?.role === 'tool')
  return request ? messageText(request.messages.at(-1)) : undefined
}

/** Make the fake LLM call `name` with `args`; resolves to the tool output as the model saw it. */
async function callTool(name, args, model) {
  const from = llm.requests.length
  await prompt(`CALL_TOOL:${name} ${JSON.stringify(args)}`, model)
  return seenByModel(from)
}

/** The completed or failed tool parts of this session for `tool`, oldest first. */
async function toolParts(tool) {
  const messages = await serve.client.get(`/session/${sessionID}/message`)
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool' && p.tool === tool))
}

/** The pending OpenCode permission prompt of this session, once there is one. */
async function nextPrompt(timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const pending = await serve.client.get('/permission', { timeoutMs: 5000 })
    const mine = pending.find((p) => p.sessionID === sessionID)
    if (mine) return mine
    if (Date.now() > deadline) throw new Error(`no permission prompt within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Call a tool that needs a permission prompt and answer it with `reply`. */
async function callWithPrompt(name, args, reply) {
  const from = llm.requests.length
  const turn = prompt(`CALL_TOOL:${name} ${JSON.stringify(args)}`)
  const asked = await nextPrompt()
  await serve.client.post(`/permission/${asked.id}/reply`, { reply })
  await turn
  return { asked, from, seen: seenByModel(from) }
}

/** Call a tool while watching for permission prompts (a prompt is rejected, so the turn ends). */
async function callWithoutPrompt(name, args) {
  let done = false
  let asked
  const call = callTool(name, args).finally(() => (done = true))
  while (!done) {
    const pending = await serve.client.get('/permission', { timeoutMs: 5000 })
    asked ??= pending.find((p) => p.sessionID === sessionID)
    if (asked) await serve.client.post(`/permission/${asked.id}/reply`, { reply: 'reject' }).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { asked, seen: await call }
}

/** Pids of the remote user's `sleep 47` processes. */
function remoteSleeps() {
  return readdirSync('/proc').filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return cmd === 'sleep\u000047\u0000' && statSync(`/proc/${pid}`).uid === sshd.uid
    } catch {
      return false
    }
  })
}

async function until(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const remoteFile = (...parts) => path.join(sshd.userHome, 'proj', ...parts)

describe('remote tools mode', () => {
  test('the built-in tools are offered with their own arguments, plus list', async () => {
    const request = llm.requests.find((r) => r.tools?.some((t) => t.function.name === 'read'))
    const tools = Object.fromEntries(request.tools.map((t) => [t.function.name, t.function]))
    const args = (name) => Object.keys(tools[name].parameters.properties).sort()
    assert.deepEqual(args('read'), ['filePath', 'limit', 'offset'])
    assert.deepEqual(args('write'), ['content', 'filePath'])
    assert.deepEqual(args('edit'), ['filePath', 'newString', 'oldString', 'replaceAll'])
    assert.deepEqual(args('glob'), ['path', 'pattern'])
    assert.deepEqual(args('grep'), ['include', 'path', 'pattern'])
    assert.deepEqual(args('bash'), ['command', 'timeout', 'workdir'])
    assert.deepEqual(args('list'), ['ignore', 'path'])
    assert.deepEqual(tools.bash.parameters.required, ['command'])
    assert.match(tools.read.description, /remote host box/)
    assert.ok(tools.remote_login, 'remote_login stays available')
    assert.ok(!tools.apply_patch, 'apply_patch is for GPT models only, as in OpenCode')
  })

  test('write, bash, grep, read, edit, list and glob run on the host', async () => {
    const written = await callTool('write', { filePath: 'notes/hello.txt', content: 'alpha\nbeta\ngamma\n' })
    assert.equal(written, 'Wrote file successfully.')
    assert.equal(await readFile(remoteFile('notes', 'hello.txt'), 'utf8'), 'alpha\nbeta\ngamma\n')
    assert.ok(!existsSync(path.join(local.projectDir, 'notes')), 'nothing in the local project')
    assert.ok(!existsSync(path.join(local.home, 'proj')), 'nothing in the local home')

    const shell = await callTool('bash', { command: 'cat notes/hello.txt; id -un; echo oops >&2; exit 3' })
    assert.equal(shell, `alpha\nbeta\ngamma\n${sshd.user}\noops\n`)
    const [, bash] = await toolParts('bash')
    assert.equal(bash.state.metadata.exit, 3)
    assert.equal(bash.state.title, 'cat notes/hello.txt; id -un; echo oops >&2; exit 3')

    const file = path.join(remoteRoot, 'notes', 'hello.txt')
    const grep = await callTool('grep', { pattern: 'be.a' })
    assert.equal(grep, `Found 1 matches\n${file}:\n  Line 2: beta`)

    // The local project directory stands for the workspace root.
    const read = await callTool('read', { filePath: path.join(local.projectDir, 'notes', 'hello.txt') })
    const content = '<content>\n1: alpha\n2: beta\n3: gamma\n\n(End of file - total 3 lines)\n</content>'
    assert.equal(read, `<path>${file}</path>\n<type>file</type>\n${content}`)
    const page = await callTool('read', { filePath: file, offset: 2, limit: 1 })
    assert.match(
      page,
      /<content>\n2: beta\n\n\(Showing lines 2-2 of 3\. Use offset=3 to continue\.\)\n<\/content>$/,
    )

    const edit = await callTool('edit', { filePath: 'notes/hello.txt', oldString: 'beta', newString: 'BETA' })
    assert.equal(edit, 'Edit applied successfully.')
    assert.equal(await readFile(remoteFile('notes', 'hello.txt'), 'utf8'), 'alpha\nBETA\ngamma\n')
    const missing = await callTool('edit', {
      filePath: 'notes/hello.txt',
      oldString: 'delta',
      newString: 'x',
    })
    assert.match(missing, /Could not find oldString in the file/)
    await callTool('write', { filePath: 'notes/twice.txt', content: 'a\na\n' })
    const twice = await callTool('edit', { filePath: 'notes/twice.txt', oldString: 'a', newString: 'b' })
    assert.match(twice, /Found multiple matches for oldString/)
    await callTool('edit', { filePath: 'notes/twice.txt', oldString: 'a', newString: 'b', replaceAll: true })
    assert.equal(await readFile(remoteFile('notes', 'twice.txt'), 'utf8'), 'b\nb\n')
    await callTool('bash', { command: "printf 'x\\000y' > blob.dat" })
    assert.match(await callTool('read', { filePath: 'blob.dat' }), /Cannot read binary file: .*blob\.dat/)
    assert.match(await callTool('read', { filePath: 'notes/helo.txt' }), /File not found: .*helo\.txt/)
    await callTool('bash', { command: 'rm blob.dat' })

    const list = await callTool('list', {})
    assert.equal(list, `${remoteRoot}/\n  notes/\n    hello.txt\n    twice.txt\n`)
    const dir = await callTool('read', { filePath: 'notes' })
    assert.equal(
      dir,
      `<path>${path.join(remoteRoot, 'notes')}</path>\n<type>directory</type>\n<entries>\nhello.txt\ntwice.txt\n\n(2 entries)\n</entries>`,
    )
    const glob = await callTool('glob', { pattern: 'hello.*' })
    assert.equal(glob, file)
    assert.equal(await callTool('glob', { pattern: '*.nothing' }), 'No files found')
    assert.ok(!existsSync(path.join(local.projectDir, 'notes')))
  })

  test('apply_patch updates, adds and deletes files on the host', async () => {
    const patchText = [
      '*** Begin Patch',
      '*** Update File: notes/hello.txt',
      '@@',
      ' alpha',
      '-BETA',
      '+beta again',
      '*** Add File: notes/new.txt',
      '+fresh',
      '*** Delete File: notes/twice.txt',
      '*** End Patch',
    ].join('\n')
    const seen = await callTool('apply_patch', { patchText }, PATCH_MODEL)
    const request = llm.requests.findLast((r) => r.model === PATCH_MODEL.modelID && r.tools?.length)
    assert.ok(request.tools.some((t) => t.function.name === 'apply_patch'))
    assert.equal(
      seen,
      'Success. Updated the following files:\nM notes/hello.txt\nA notes/new.txt\nD notes/twice.txt',
    )
    assert.equal(await readFile(remoteFile('notes', 'hello.txt'), 'utf8'), 'alpha\nbeta again\ngamma\n')
    assert.equal(await readFile(remoteFile('notes', 'new.txt'), 'utf8'), 'fresh\n')
    assert.ok(!existsSync(remoteFile('notes', 'twice.txt')))

    const moved = [
      '*** Begin Patch',
      '*** Update File: notes/new.txt',
      '*** Move to: notes/moved.txt',
      '@@ fresh',
      '+appended',
      '*** End Patch',
    ].join('\n')
    const second = await callTool('apply_patch', { patchText: moved }, PATCH_MODEL)
    assert.equal(second, 'Success. Updated the following files:\nM notes/moved.txt')
    assert.equal(await readFile(remoteFile('notes', 'moved.txt'), 'utf8'), 'fresh\nappended\n')
    assert.ok(!existsSync(remoteFile('notes', 'new.txt')))
    const bad = await callTool('apply_patch', { patchText: '*** Begin Patch\n*** End Patch' }, PATCH_MODEL)
    assert.match(bad, /patch rejected: empty patch/)
  })

  test('bash: timeout, large output and abort behave like the built-in', async () => {
    const slow = await callTool('bash', { command: 'echo started; sleep 5', timeout: 500 })
    assert.match(
      slow,
      /^started\n\n\n<shell_metadata>\nshell tool terminated command after exceeding timeout 500 ms/,
    )

    const long = await callTool('bash', { command: 'seq 1 3000' })
    const saved = /^\.\.\.output truncated\.\.\.\n\nFull output saved to: (\S+)\n\n/.exec(long)
    assert.ok(saved, long.slice(0, 200))
    assert.match(long, /\n3000\n?$/, 'the tail is kept')
    // The saved file is local (OpenCode's tool-output dir); read finds it there.
    const page = await callTool('read', { filePath: saved[1], offset: 10, limit: 2 })
    assert.match(page, /<content>\n10: 10\n11: 11\n\n\(Showing lines 10-11 of 3000/)

    const turn = prompt('CALL_TOOL:bash {"command":"sleep 47; echo finished"}').catch(() => {})
    await until(() => remoteSleeps().length > 0, 'the command to start on the host')
    await serve.client.post(`/session/${sessionID}/abort`, {})
    await turn
    await until(() => remoteSleeps().length === 0, 'the aborted command to be killed on the host')
  })

  test('bash asks for the paths outside the root that a command names, as the built-in does', async () => {
    for (const [command, patterns] of [
      ['cat /etc/hostname', ['/etc/hostname']],
      ['ls ~/.ssh', [`${await realpath(sshd.userHome)}/.ssh/*`]],
      ['ls ../..', [`${path.dirname(path.dirname(remoteRoot))}/*`]],
      ['echo leak > /tmp/ocr-redirect.txt', ['/tmp/ocr-redirect.txt']],
      ['cd /var && ls', ['/var/*']],
    ]) {
      const { asked } = await callWithoutPrompt('bash', { command })
      assert.equal(asked?.permission, 'external_directory', command)
      assert.deepEqual(asked.patterns, patterns, command)
    }
    assert.ok(!existsSync('/tmp/ocr-redirect.txt'), 'a refused command does not run')
    // Inside the root, and /dev/null, need nothing.
    const inside = await callWithoutPrompt('bash', {
      command: 'echo ok > inside.txt 2>/dev/null; cat ./inside.txt',
    })
    assert.equal(inside.asked, undefined)
    assert.match(inside.seen, /^ok/)
  })

  test('bash keeps a huge output bounded and saves it whole, readable only by the user', async () => {
    // About 12 MB: far more than the addon keeps in memory.
    const seen = await callTool('bash', {
      command: 'yes 0123456789abcdefghijklmnopqrstuvwxyz | head -n 320000; echo the-end',
    })
    const saved = /^\.\.\.output truncated\.\.\.\n\nFull output saved to: (\S+)\n\n/.exec(seen)
    assert.ok(saved, seen.slice(0, 200))
    assert.match(seen, /the-end\n?$/)
    const file = saved[1]
    assert.equal(statSync(file).size, 320000 * 37 + 'the-end\n'.length)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700)
    const part = (await toolParts('bash')).at(-1)
    assert.ok(part.state.metadata.output.length <= 40_000, 'the UI preview stays small')
    // A shorter output cut for the model is saved by the plugin, 0600 too.
    const long = await callTool('bash', { command: 'seq 1 3000' })
    const small = /Full output saved to: (\S+)/.exec(long)[1]
    assert.equal(statSync(small).mode & 0o777, 0o600)
  })

  test('a path outside the root asks first: once, then always (remembered), then reject', async () => {
    const outside = '/etc/hostname'
    const expected = await readFile(outside, 'utf8')
    const first = await callWithPrompt('read', { filePath: outside }, 'once')
    assert.equal(first.asked.permission, 'external_directory')
    // The prompt names exactly what an `always` would approve: this file, for reading.
    assert.deepEqual(first.asked.patterns, ['/etc/hostname'])
    assert.deepEqual(first.asked.always, ['/etc/hostname'])
    assert.equal(first.asked.metadata.operation, 'read')
    assert.equal(first.asked.metadata.host, HOST)
    assert.match(first.seen, new RegExp(`<path>/etc/hostname</path>[\\s\\S]*1: ${expected.trim()}`))

    // `once` is not remembered: the next read asks again; `always` is.
    const second = await callWithPrompt('read', { filePath: outside }, 'always')
    assert.match(second.seen, /<type>file<\/type>/)
    const approvals = path.join(sshd.userHome, '.opencode-remote', 'state', 'approvals', `${WORKSPACE}.json`)
    const saved = JSON.parse(await readFile(approvals, 'utf8'))
    assert.deepEqual(
      saved.always.map(({ access, pattern }) => ({ access, pattern })),
      [{ access: 'read', pattern: '/etc/hostname' }],
      'the stub keeps the always approval: that file, for reading',
    )
    const third = await callWithoutPrompt('read', { filePath: outside })
    assert.equal(third.asked, undefined, 'no prompt the third time')
    assert.match(third.seen, /<path>\/etc\/hostname<\/path>/)

    // That `always` is no licence for a sibling, a write, or a command elsewhere.
    const sibling = await callWithoutPrompt('write', { filePath: '/etc/ocr-sibling.txt', content: 'x' })
    assert.deepEqual(sibling.asked?.patterns, ['/etc/ocr-sibling.txt'])
    assert.equal(sibling.asked.metadata.operation, 'write')
    const elsewhere = await callWithoutPrompt('bash', { command: 'ls', workdir: '/usr' })
    assert.deepEqual(elsewhere.asked?.patterns, ['/usr/*'])
    assert.equal(elsewhere.asked.metadata.operation, 'exec')

    const refused = await callWithPrompt('read', { filePath: '/usr/share/ocr-secret.txt' }, 'reject')
    assert.deepEqual(refused.asked.patterns, ['/usr/share/ocr-secret.txt'])
    const part = (await toolParts('read')).at(-1)
    assert.equal(part.state.status, 'error')
    assert.match(part.state.error, /rejected permission[\s\S]*\/usr\/share\/ocr-secret\.txt on host box/)
    // As with a built-in tool, a rejection ends the turn: the model is not called again.
    assert.equal(seenByModel(refused.from), undefined)
    assert.doesNotMatch(await readFile(approvals, 'utf8'), /usr\/share/)
  })
})
