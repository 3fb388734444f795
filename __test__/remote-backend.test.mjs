// The remote tools backend as the plugin uses it: the addon bootstraps the stub on first use and every
// file, search and command request runs on the host (a separate Unix user with its own HOME), with
// permission-first paths.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const require = createRequire(import.meta.url)

let sshd, home, api, place

before(async () => {
  const pkg = await installPackedPackage()
  sshd = await startSshd()
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-backend-'))
  await sshd.writeClientSshFiles(home, { alias: 'box' })
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  Object.assign(process.env, {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
  })
  delete process.env.SSH_AUTH_SOCK
  // The installed package's API: the stub it bootstraps is the one inside that package.
  api = require(pkg.api)
  place = { host: 'box', workspace: 'ws-one', root: '~/project', options: { hosts: { box: 'box' } } }
})

after(async () => {
  await sshd?.stop()
})

/** Poll `check` every 50 ms for up to 15 s. */
async function until(check, what) {
  const deadline = Date.now() + 15_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

test('files are written, read and searched on the host, not locally', async () => {
  const write = await api.remoteCall(place, 'fs/write', {
    path: 'src/hello.txt',
    content: 'hello\nworld\n',
    createDirs: true,
  })
  assert.ok(write.result, JSON.stringify(write))
  const onHost = path.join(sshd.userHome, 'project', 'src', 'hello.txt')
  assert.equal(await readFile(onHost, 'utf8'), 'hello\nworld\n')
  assert.ok(!existsSync(path.join(home, 'project')))

  const read = await api.remoteCall(place, 'fs/read', { path: 'src/hello.txt' })
  assert.deepEqual(read.result.lines, ['hello', 'world'])
  const grep = await api.remoteCall(place, 'grep', { pattern: 'wor.d' })
  assert.equal(JSON.stringify(grep.result).includes('hello.txt'), true, JSON.stringify(grep.result))
})

test('a request with a field the protocol does not know is refused here, naming the field', async () => {
  const before = await api.remoteCall(place, 'fs/read', { path: 'src/hello.txt' })
  assert.ok(before.result, JSON.stringify(before))
  await assert.rejects(
    api.remoteCall(place, 'fs/read', { path: 'src/hello.txt', offest: 3 }),
    (err) => err.code === 'INVALID_ARGUMENT' && /fs\/read/.test(err.message) && /offest/.test(err.message),
  )
  await assert.rejects(
    api.remoteCall(place, 'fs/chmod', { path: 'src/hello.txt' }),
    (err) => err.code === 'INVALID_ARGUMENT' && /unknown operation `fs\/chmod`/.test(err.message),
  )
})

test('commands run on the host as the remote user, in the workspace root', async () => {
  const { result } = await api.remoteExec(place, { command: 'id -un; pwd; echo oops >&2; exit 3' })
  assert.equal(result.stdout, `${sshd.user}\n${path.join(sshd.userHome, 'project')}\n`)
  assert.equal(result.stderr, 'oops\n')
  assert.equal(result.exitCode, 3)
})

test('a path outside the root needs permission; once is honoured once', async () => {
  const outside = { path: '/etc/hostname' }
  const first = await api.remoteCall(place, 'fs/read', outside)
  assert.ok(first.permission, 'refused until approved')
  assert.equal(first.permission.path, '/etc/hostname')
  const { grant } = await api.remoteReply(place, { requestId: first.permission.requestId, reply: 'once' })
  const allowed = await api.remoteCall(place, 'fs/read', { ...outside, grant })
  assert.ok(allowed.result, JSON.stringify(allowed))
  const again = await api.remoteCall(place, 'fs/read', { ...outside, grant })
  assert.ok(again.permission, 'a once grant works once')
})

test('cancelRemoteExec stops the command and everything it started on the host', async () => {
  const marker = `sleep 300.${process.pid}`
  const running = api.remoteExec(
    place,
    // A child that ignores SIGTERM: only the stub's group kill (TERM, then KILL) ends it.
    { command: `(trap '' TERM; ${marker}) & echo started; wait` },
    'cancel-me',
  )
  const hostProcesses = () =>
    spawnSync('pgrep', ['-u', String(sshd.uid), '-f', marker])
      .stdout.toString()
      .trim()
      .split('\n')
      .filter(Boolean).length
  await until(() => hostProcesses() > 0, 'the command to start on the host')
  assert.equal(api.cancelRemoteExec('cancel-me'), true)
  const { result } = await running
  assert.equal(result.cancelled, true)
  assert.match(result.stdout, /started/)
  await until(() => hostProcesses() === 0, 'the whole process group to be killed')
  assert.equal(api.cancelRemoteExec('cancel-me'), false, 'a finished request is no longer cancellable')
})

test('another workspace on the same host has its own root and approvals', async () => {
  const other = { ...place, workspace: 'ws-two', root: '~/other' }
  const denied = await api.remoteCall(other, 'fs/read', {
    path: path.join(sshd.userHome, 'project', 'src', 'hello.txt'),
  })
  assert.ok(denied.permission, "ws-two may not read ws-one's root")
  const { result } = await api.remoteExec(other, { command: 'pwd' })
  assert.equal(result.stdout.trim(), path.join(sshd.userHome, 'other'))
})

test('the stub is set up again when it dies between calls', async () => {
  const info = JSON.parse(
    await readFile(path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
  )
  process.kill(info.pid, 'SIGKILL')
  const { result } = await api.remoteExec(place, { command: 'echo back' })
  assert.equal(result.stdout, 'back\n')
})

test('after the SSH connection is killed, the tunnel comes back and the next call works', async () => {
  const info = JSON.parse(
    await readFile(path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
  )
  await sshd.dropSessions()
  const { result } = await api.remoteExec(place, { command: 'echo still here' })
  assert.equal(result.stdout, 'still here\n')
  const after = JSON.parse(
    await readFile(path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
  )
  assert.equal(after.pid, info.pid, 'the same stub: only the link was re-established')
})
