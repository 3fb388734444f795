// `opencode-remote setup` against a real sshd whose remote user has its own HOME: a cold install
// uploads and starts the stub, a second run reuses it, and nothing leaks the token.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import { opencodePath } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const run = promisify(execFile)

// The installed package's CLI: it uploads the stub that ships inside that package.
let sshd, home, env, BIN

async function setup(...extra) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'setup', 'box', '--json', ...extra], { env })
    return { code: 0, report: JSON.parse(stdout), stderr }
  } catch (error) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr }
  }
}

before(async () => {
  BIN = (await installPackedPackage()).bin
  sshd = await startSshd()
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-setup-'))
  await sshd.writeClientSshFiles(home, { alias: 'box' })
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  await writeFile(
    path.join(home, 'config', 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { box: 'box' } }),
  )
  env = {
    PATH: opencodePath(),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
      ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
      : {}),
  }
})

after(async () => {
  await sshd?.stop()
})

test('setup needs no stub directory: --stub-dir is an optional override', async () => {
  const { stdout } = await run(process.execPath, [BIN, 'setup', '--help'], { env })
  assert.match(stdout, /Usage: opencode-remote setup \[OPTIONS\] <HOST>/)
  assert.match(stdout, /--stub-dir <DIR>/)
})

test('a cold setup installs the stub in a versioned path and starts it', async () => {
  const first = await setup()
  assert.equal(first.code, 0, first.stderr)
  assert.equal(first.report.reused, false)
  for (const step of [
    'connected',
    'remote is Linux',
    'uploading the stub',
    'uploaded and verified',
    'stub healthy',
  ]) {
    assert.match(first.stderr, new RegExp(step), `progress shows "${step}"`)
  }
  const remoteHome = path.join(sshd.userHome, '.opencode-remote')
  const binary = path.join(remoteHome, 'bin', first.report.version, 'opencode-remote-stub')
  assert.ok(existsSync(binary), 'installed under bin/<version>/')
  const token = path.join(remoteHome, 'run', 'stub.token')
  assert.equal((await stat(token)).mode & 0o777, 0o600, 'the token is private')
  assert.equal((await stat(token)).uid, sshd.uid, 'the remote user owns it')
  assert.deepEqual(
    (await readdir(path.join(remoteHome, 'bin', first.report.version))).filter((f) => f.startsWith('.')),
    [],
    'no upload leftovers',
  )
  // The token never reaches the local disk or the output.
  const secret = (await readFile(token, 'utf8')).trim()
  assert.ok(!first.stderr.includes(secret) && !JSON.stringify(first.report).includes(secret))
  const { stdout: localFiles } = await run('grep', ['-rl', secret, home]).catch(() => ({ stdout: '' }))
  assert.equal(localFiles, '', 'no local file holds the token')
})

test('a second setup reuses the healthy stub', async () => {
  const pidFile = path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json')
  const before = JSON.parse(await readFile(pidFile, 'utf8')).pid
  const second = await setup()
  assert.equal(second.code, 0, second.stderr)
  assert.equal(second.report.reused, true)
  assert.match(second.stderr, /reusing it/)
  assert.doesNotMatch(second.stderr, /uploading/)
  assert.equal(JSON.parse(await readFile(pidFile, 'utf8')).pid, before, 'the same stub process')

  // doctor sees the same stub, healthy through a tunnel (it fails overall: this host has no opencode).
  const { stdout } = await run(process.execPath, [BIN, 'doctor', 'box', '--json'], { env }).catch((e) => e)
  const checks = Object.fromEntries(JSON.parse(stdout)[0].checks.map((c) => [c.name, c]))
  assert.equal(checks.stub.status, 'ok', JSON.stringify(checks.stub))
  assert.match(checks.stub.detail, new RegExp(`running \\(pid ${before},`))
  assert.equal(checks.tunnel.status, 'ok', JSON.stringify(checks.tunnel))
  assert.equal(checks.token.status, 'ok', JSON.stringify(checks.token))
})

test('a stub that died is started again', async () => {
  const info = JSON.parse(
    await readFile(path.join(sshd.userHome, '.opencode-remote', 'run', 'stub.json'), 'utf8'),
  )
  process.kill(info.pid, 'SIGKILL')
  const third = await setup()
  assert.equal(third.code, 0, third.stderr)
  assert.equal(third.report.reused, false)
  assert.doesNotMatch(third.stderr, /uploading/, 'the installed binary is kept')
})

test('a password-only host is set up once with its password, and never needs it again', async () => {
  const server = await startSshd({ extraConfig: ['PasswordAuthentication yes'] })
  try {
    const chpasswd = spawnSync('chpasswd', { input: `${server.user}:once-only-secret\n` })
    assert.equal(chpasswd.status, 0, String(chpasswd.stderr))
    const pwHome = await mkdtemp(path.join(os.tmpdir(), 'ocr-pw-'))
    await mkdir(path.join(pwHome, '.ssh'), { recursive: true, mode: 0o700 })
    await writeFile(path.join(pwHome, '.ssh', 'known_hosts'), server.knownHostsLine + '\n')
    await writeFile(
      path.join(pwHome, '.ssh', 'config'),
      `Host pw\n  HostName 127.0.0.1\n  Port ${server.port}\n  User ${server.user}\n`,
    )
    await mkdir(path.join(pwHome, 'config', 'opencode'), { recursive: true })
    const hostsFile = path.join(pwHome, 'config', 'opencode', 'hosts.json')
    await writeFile(hostsFile, JSON.stringify({ hosts: { pw: 'pw' } }))
    const pwEnv = { ...env, HOME: pwHome, XDG_CONFIG_HOME: path.join(pwHome, 'config') }
    const setupPw = (args, input) =>
      new Promise((resolve) => {
        const child = execFile(
          process.execPath,
          [BIN, 'setup', 'pw', '--json', ...args],
          { env: pwEnv },
          (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stdout, stderr }),
        )
        child.stdin.end(input ?? '')
      })

    const refused = await setupPw([])
    assert.equal(refused.code, 1, 'no key, no password: refused')
    assert.match(refused.stderr, /AUTH_FAILED/)

    const first = await setupPw(['--password-stdin'], 'once-only-secret\n')
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stderr, /installed a new key for pw: ~\/\.ssh\/opencode-remote_pw/)
    assert.ok(!first.stderr.includes('once-only-secret') && !first.stdout.includes('once-only-secret'))
    const key = path.join(pwHome, '.ssh', 'opencode-remote_pw')
    assert.equal((await stat(key)).mode & 0o777, 0o600)
    const hosts = JSON.parse(await readFile(hostsFile, 'utf8'))
    assert.deepEqual(hosts.hosts.pw, { host: 'pw', identityFile: key })

    // The password is gone from the story: change it, and setup still works with the key alone.
    await run('usermod', ['-p', '*', server.user])
    const second = await setupPw([])
    assert.equal(second.code, 0, second.stderr)
    assert.equal(JSON.parse(second.stdout).reused, true, 'the stub the first setup installed')
  } finally {
    await server.stop()
  }
})

test('a host that only allows keyboard-interactive is set up with its password too', async () => {
  const server = await startSshd({
    extraConfig: ['UsePAM yes', 'KbdInteractiveAuthentication yes', 'PasswordAuthentication no'],
  })
  try {
    const chpasswd = spawnSync('chpasswd', { input: `${server.user}:kbd-int-secret\n` })
    assert.equal(chpasswd.status, 0, String(chpasswd.stderr))
    const kiHome = await mkdtemp(path.join(os.tmpdir(), 'ocr-ki-'))
    await mkdir(path.join(kiHome, '.ssh'), { recursive: true, mode: 0o700 })
    await writeFile(path.join(kiHome, '.ssh', 'known_hosts'), server.knownHostsLine + '\n')
    await writeFile(
      path.join(kiHome, '.ssh', 'config'),
      `Host ki\n  HostName 127.0.0.1\n  Port ${server.port}\n  User ${server.user}\n`,
    )
    await mkdir(path.join(kiHome, 'config', 'opencode'), { recursive: true })
    await writeFile(
      path.join(kiHome, 'config', 'opencode', 'hosts.json'),
      JSON.stringify({ hosts: { ki: 'ki' } }),
    )
    const kiEnv = { ...env, HOME: kiHome, XDG_CONFIG_HOME: path.join(kiHome, 'config') }
    const result = await new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [BIN, 'setup', 'ki', '--json', '--password-stdin'],
        { env: kiEnv },
        (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stdout, stderr }),
      )
      child.stdin.end('kbd-int-secret\n')
    })
    assert.equal(result.code, 0, result.stderr + (await server.readLog()))
    assert.match(result.stderr, /installed a new key for ki/)
  } finally {
    await run('usermod', ['-p', '*', server.user]).catch(() => {})
    await server.stop()
  }
})

/** `opencode-remote setup box --json` against `server`, from a fresh local home. */
async function setupOn(server) {
  const nfHome = await mkdtemp(path.join(os.tmpdir(), 'ocr-nofwd-'))
  await server.writeClientSshFiles(nfHome, { alias: 'box' })
  await mkdir(path.join(nfHome, 'config', 'opencode'), { recursive: true })
  await writeFile(
    path.join(nfHome, 'config', 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { box: 'box' } }),
  )
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'setup', 'box', '--json'],
      { env: { ...env, HOME: nfHome, XDG_CONFIG_HOME: path.join(nfHome, 'config') } },
      (error, stdout, stderr) => resolve({ code: error?.code ?? 0, stdout, stderr }),
    )
  })
}

test('a host that refuses stream-local forwarding gets a setup error that says so, and how to fix it', async () => {
  const server = await startSshd({ extraConfig: ['AllowStreamLocalForwarding no'] })
  try {
    const result = await setupOn(server)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /FORWARDING_REFUSED/)
    assert.match(result.stderr, /sshd on 'box' refuses stream-local forwarding/)
    assert.match(result.stderr, /AllowStreamLocalForwarding yes/)
  } finally {
    await server.stop()
  }
})

test('a host with AllowTcpForwarding no refuses too (OpenSSH applies it to stream-local channels), and says so', async () => {
  const server = await startSshd({ extraConfig: ['AllowTcpForwarding no'] })
  try {
    const result = await setupOn(server)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /FORWARDING_REFUSED/)
    assert.match(result.stderr, /`AllowTcpForwarding` yes or local/)
  } finally {
    await server.stop()
  }
})

test('a host whose CPU has no stub gets an "unsupported architecture" error naming its `uname -m`', async () => {
  // ARMv6 (the first Raspberry Pis): a 32-bit ARM the armv7 stub does not run on. The remote user's PATH
  // starts with a `uname` that says so.
  const fake = await mkdtemp(path.join(os.tmpdir(), 'ocr-uname-'))
  await chmod(fake, 0o755)
  await writeFile(path.join(fake, 'uname'), '#!/bin/sh\necho Linux armv6l\n', { mode: 0o755 })
  const server = await startSshd({ env: { PATH: `${fake}:/usr/local/bin:/usr/bin:/bin` } })
  try {
    const result = await setupOn(server)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /REMOTE_RUN_FAILED/)
    assert.match(
      result.stderr,
      /unsupported architecture armv6l \(`uname -m` on the host\): opencode-remote has a stub for x86_64, aarch64 and armv7 Linux only/,
    )
    assert.equal(existsSync(path.join(server.userHome, '.opencode-remote', 'bin')), false, 'nothing uploaded')
  } finally {
    await server.stop()
  }
})
