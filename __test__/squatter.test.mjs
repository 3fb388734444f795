// Issue 10: the stub cannot be impersonated by another user on the host. The stub listens on a Unix
// socket in its user's 0700 run directory (no TCP port), and the addon reaches it through SSH
// stream-local forwarding. A second Unix user of the host, created for this test, can neither connect
// to that socket nor listen where it was after the stub died (so it can never collect the token), and
// the workspace keeps working. A host whose sshd refuses stream-local forwarding fails with
// FORWARDING_REFUSED, naming the host.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { exec, killUid, onExit, track } from './harness/proc.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const require = createRequire(import.meta.url)

let sshd, home, api, place, other

/** A throw-away second Unix user on the host; removed (with its processes) when the test ends. */
async function createOtherUser() {
  const user = `ocr-sq-${process.pid}`
  await exec('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', user])
  const untrack = track({ user })
  const uid = Number((await exec('id', ['-u', user])).stdout.trim())
  const gid = Number((await exec('id', ['-g', user])).stdout.trim())
  let removed = false
  const remove = () => {
    if (removed) return
    removed = true
    killUid(uid)
    spawnSync('userdel', [user], { stdio: 'ignore' })
    untrack()
  }
  const unregister = onExit(remove)
  return {
    user,
    uid,
    gid,
    remove: () => {
      remove()
      unregister()
    },
  }
}

/**
 * Run a small node script as the other user; it prints one JSON line, which is returned. `socket` and
 * `file` reach the script as argv[1] and argv[2].
 */
function asOther(script, ...args) {
  const result = spawnSync(process.execPath, ['-e', script, ...args], {
    uid: other.uid,
    gid: other.gid,
    cwd: '/',
    env: { PATH: '/usr/bin:/bin' },
    encoding: 'utf8',
    timeout: 20_000,
  })
  assert.equal(result.status, 0, `${result.stderr}`)
  return JSON.parse(result.stdout.trim())
}

const CONNECT = `
const s = require('net').connect(process.argv[1])
s.on('connect', () => { console.log(JSON.stringify({ connected: true })); process.exit(0) })
s.on('error', (e) => { console.log(JSON.stringify({ code: e.code })); process.exit(0) })`

const LISTEN = `
const srv = require('net').createServer()
srv.on('error', (e) => { console.log(JSON.stringify({ code: e.code })); process.exit(0) })
srv.listen(process.argv[1], () => { console.log(JSON.stringify({ listening: true })); process.exit(0) })`

const READ = `
try { require('fs').readFileSync(process.argv[1]); console.log(JSON.stringify({ read: true })) }
catch (e) { console.log(JSON.stringify({ code: e.code })) }`

const WRITE = `
try { require('fs').writeFileSync(process.argv[1], '{"pid":1}'); console.log(JSON.stringify({ written: true })) }
catch (e) { console.log(JSON.stringify({ code: e.code })) }`

const stubFile = (...parts) => path.join(sshd.userHome, '.opencode-remote', ...parts)
const stubInfo = async () => JSON.parse(await readFile(stubFile('run', 'stub.json'), 'utf8'))

/** Inodes of every TCP socket on the host (v4 and v6). */
function tcpInodes() {
  const inodes = new Set()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(table, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9]
      if (inode) inodes.add(inode)
    }
  }
  return inodes
}

/** The socket inodes `pid` holds open. */
function socketInodes(pid) {
  return readdirSync(`/proc/${pid}/fd`)
    .map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        return ''
      }
    })
    .map((target) => /^socket:\[(\d+)\]$/.exec(target)?.[1])
    .filter(Boolean)
}

before(async () => {
  const pkg = await installPackedPackage()
  sshd = await startSshd()
  other = await createOtherUser()
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-squat-'))
  await sshd.writeClientSshFiles(home, { alias: 'box' })
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  Object.assign(process.env, { HOME: home, XDG_CONFIG_HOME: path.join(home, 'config') })
  delete process.env.SSH_AUTH_SOCK
  api = require(pkg.api)
  place = { host: 'box', workspace: 'ws-squat', root: '~/project', options: { hosts: { box: 'box' } } }
})

after(async () => {
  other?.remove()
  await sshd?.stop()
})

describe('another user on the host', () => {
  test('can neither connect to the stub, nor read its token or record; the stub has no TCP port', async () => {
    await api.remoteAttach(place)
    const info = await stubInfo()
    assert.equal(info.socket, stubFile('run', 'stub.sock'))
    assert.equal(info.protocol, 2)
    assert.equal(info.port, undefined, 'no port is recorded')
    const socketStat = statSync(info.socket)
    assert.ok(socketStat.isSocket())
    assert.equal(socketStat.uid, sshd.uid)
    assert.equal(socketStat.mode & 0o777, 0o600)
    assert.equal(statSync(stubFile('run')).mode & 0o777, 0o700)
    const tcp = tcpInodes()
    assert.deepEqual(
      socketInodes(info.pid).filter((inode) => tcp.has(inode)),
      [],
      'the stub holds no TCP socket',
    )

    assert.deepEqual(asOther(CONNECT, info.socket), { code: 'EACCES' })
    assert.deepEqual(asOther(READ, stubFile('run', 'stub.token')), { code: 'EACCES' })
    assert.deepEqual(asOther(READ, stubFile('run', 'stub.json')), { code: 'EACCES' })
    // The workspace's own user still gets through, via the SSH connection.
    const { result } = await api.remoteExec(place, { command: 'echo through' })
    assert.equal(result.stdout, 'through\n')
  })

  test('cannot listen where the dead stub was, nor point the record elsewhere; the workspace comes back', async () => {
    const info = await stubInfo()
    process.kill(info.pid, 'SIGKILL')
    // A crash leaves the socket file behind: the place a squatter would want.
    for (let i = 0; i < 100 && existsProc(info.pid); i++) await new Promise((r) => setTimeout(r, 20))
    assert.ok(statSync(info.socket).isSocket(), 'the stale socket file is still there')

    assert.deepEqual(asOther(LISTEN, info.socket), { code: 'EACCES' })
    assert.deepEqual(asOther(WRITE, stubFile('run', 'stub.json')), { code: 'EACCES' })
    assert.deepEqual(asOther(CONNECT, info.socket), { code: 'EACCES' })

    const { result } = await api.remoteExec(place, { command: 'echo back' })
    assert.equal(result.stdout, 'back\n')
    const restarted = await stubInfo()
    assert.notEqual(restarted.pid, info.pid, 'a new stub was started')
    assert.equal(restarted.socket, info.socket, 'on the same socket')
    assert.equal(statSync(restarted.socket).uid, sshd.uid)
  })
})

function existsProc(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat
      .slice(stat.lastIndexOf(')') + 1)
      .trim()
      .startsWith('Z')
  } catch {
    return false
  }
}

test('a create on a host whose sshd refuses stream-local forwarding fails with FORWARDING_REFUSED naming the host', async () => {
  const refusing = await startSshd({ extraConfig: ['AllowStreamLocalForwarding no'] })
  try {
    await refusing.writeClientSshFiles(home, { alias: 'nofwd' })
    const failed = await api
      .createWorkspace({
        id: 'wrk_nofwd',
        host: 'nofwd',
        pluginSpec: 'file:///nonexistent',
        options: { hosts: { nofwd: 'nofwd' } },
      })
      .then(
        () => assert.fail('the create succeeded'),
        (error) => error,
      )
    assert.equal(failed.code, 'FORWARDING_REFUSED', failed.message)
    assert.match(failed.message, /'nofwd'/)
    assert.match(failed.message, /sshd on 'nofwd' refuses stream-local forwarding/)
    assert.match(failed.message, /AllowStreamLocalForwarding yes/)
    assert.match(failed.message, /OpenSSH ≥ 6\.7/)
    // The stub itself did start there: only the forwarding was refused.
    const info = JSON.parse(
      await readFile(path.join(refusing.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
    )
    assert.ok(info.pid > 0)
  } finally {
    await refusing.stop()
  }
})
