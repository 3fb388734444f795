// The opencode-remote command as a user runs it: editing real config files, and doctor against a real
// sshd whose remote user runs the real opencode.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { opencodePath, remoteOpencodeEnv } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { repoRoot } from './support/package.mjs'

const run = promisify(execFile)
const BIN = path.join(repoRoot, 'bin', 'opencode-remote.js')

let home, env

/** Run the CLI with the test HOME; resolves to {code, stdout, stderr} whatever the exit code. */
async function cli(args, extraEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv } })
    return { code: 0, stdout, stderr }
  } catch (error) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr }
  }
}

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-cli-'))
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  env = {
    PATH: opencodePath(),
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
      ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
      : {}),
  }
})

describe('hosts', () => {
  const config = () => path.join(home, 'config', 'opencode', 'opencode.jsonc')
  const original = `// my OpenCode config
{
  "model": "fake/local-m", // the default model
  /* plugins */
  "plugin": ["opencode-remote"],
}
`

  test('add keeps the comments of opencode.jsonc and leaves a backup', async () => {
    await writeFile(config(), original)
    const result = await cli([
      'hosts',
      'add',
      'pi',
      'pi-box',
      '--model',
      'fake/remote-m',
      '--to',
      'plugin-options',
    ])
    assert.equal(result.code, 0, result.stderr)
    const text = await readFile(config(), 'utf8')
    for (const comment of ['// my OpenCode config', '// the default model', '/* plugins */']) {
      assert.ok(text.includes(comment), `kept ${comment}:\n${text}`)
    }
    assert.match(
      text,
      /"opencode-remote",\s*\{\s*"hosts": \{\s*"pi": \{\s*"host": "pi-box",\s*"model": "fake\/remote-m"/,
    )
    const backups = (await readdir(path.dirname(config()))).filter((f) => f.startsWith('opencode.jsonc.bak-'))
    assert.equal(backups.length, 1)
    assert.equal(await readFile(path.join(path.dirname(config()), backups[0]), 'utf8'), original)

    const list = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
    assert.deepEqual(
      list.map((h) => [h.name, h.address, h.source]),
      [['pi', 'pi-box', 'opencode.json (plugin options)']],
    )
    assert.equal((await cli(['hosts', 'remove', 'pi'])).code, 0, 'removed from the plugin options')
    assert.doesNotMatch(await readFile(config(), 'utf8'), /pi-box/)
    assert.match(await readFile(config(), 'utf8'), /\/\/ the default model/)
  })

  test('a crash mid-write leaves the old file intact', async () => {
    await writeFile(config(), original)
    const child = spawn(process.execPath, [BIN, 'hosts', 'add', 'dev', 'dev-box', '--to', 'plugin-options'], {
      env: { ...env, OPENCODE_REMOTE_TEST_PAUSE_BEFORE_RENAME_MS: '5000' },
      stdio: 'ignore',
    })
    // Wait until the new contents sit in the temp file, then kill the process before it renames.
    const dir = path.dirname(config())
    const deadline = Date.now() + 10_000
    while (!(await readdir(dir)).some((f) => f.startsWith('.opencode.jsonc.tmp-'))) {
      assert.ok(Date.now() < deadline, 'the temp file appeared')
      await new Promise((r) => setTimeout(r, 20))
    }
    child.kill('SIGKILL')
    await new Promise((r) => child.on('exit', r))
    assert.equal(await readFile(config(), 'utf8'), original, 'the old file is untouched')
  })

  test('add and remove edit hosts.jsonc; errors name the file and the field', async () => {
    const hosts = path.join(home, 'config', 'opencode', 'hosts.jsonc')
    await writeFile(hosts, '{\n  // lab machines\n  "hosts": {}\n}\n')
    assert.equal((await cli(['hosts', 'add', 'lab', 'me@lab.invalid'])).code, 0)
    let list = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
    assert.deepEqual(
      list.map((h) => [h.name, h.address]),
      [['lab', 'me@lab.invalid']],
    )
    assert.match(await readFile(hosts, 'utf8'), /\/\/ lab machines/)

    const bad = await cli(['hosts', 'add', 'x', 'me@lab.invalid', '--model', 'no-slash'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /error \[CONFIG_INVALID\]: ~\/config\/opencode\/hosts\.jsonc: hosts\.x\.model/)
    assert.match(bad.stderr, /fix: /)

    assert.equal((await cli(['hosts', 'remove', 'lab'])).code, 0)
    list = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
    assert.deepEqual(list, [])
    assert.equal((await cli(['hosts', 'remove', 'lab'])).code, 1)
  })

  test('usage errors exit 2 and --help works on every command', async () => {
    assert.equal((await cli(['frobnicate'])).code, 2)
    for (const args of [['--help'], ['hosts', '--help'], ['hosts', 'add', '--help'], ['doctor', '--help']]) {
      const result = await cli(args)
      assert.equal(result.code, 0)
      assert.match(result.stdout, /Usage: opencode-remote/)
    }
  })

  test('schema prints the hosts.json schema', async () => {
    const schema = JSON.parse((await cli(['schema'])).stdout)
    assert.ok(schema.properties.hosts)
  })
})

describe('doctor', () => {
  let sshd, ssh

  before(async () => {
    sshd = await startSshd({ env: remoteOpencodeEnv() })
    ssh = await sshd.writeClientSshFiles(home, { alias: 'box' })
    await writeFile(
      path.join(home, 'config', 'opencode', 'hosts.json'),
      JSON.stringify({ hosts: { box: 'box', bare: { host: 'box', opencode: '/nonexistent/opencode' } } }),
    )
  })

  after(async () => {
    await sshd?.stop()
  })

  async function doctor(host) {
    const result = await cli(['doctor', host, '--json'])
    const [report] = JSON.parse(result.stdout)
    const checks = Object.fromEntries(report.checks.map((c) => [c.name, c]))
    return { code: result.code, checks, report }
  }

  test('a healthy host is all green', async () => {
    const { code, checks, report } = await doctor('box')
    assert.equal(code, 0, JSON.stringify(report, null, 2))
    for (const name of [
      'config',
      'resolve',
      'key file',
      'tcp',
      'host key',
      'auth',
      'remote os',
      'opencode',
    ]) {
      assert.equal(checks[name]?.status, 'ok', `${name}: ${JSON.stringify(checks[name])}`)
    }
    assert.match(checks.auth.detail, new RegExp(`as ${sshd.user} with key file`))
    assert.match(checks.opencode.detail, /^1\.18\.33 at /)
    // Like `ssh -G`, with the config line behind each value.
    const config = checks['ssh config'].detail
    assert.match(config, /address 127\.0\.0\.1 \(\S*config:\d+\)/)
    assert.match(config, new RegExp(`user ${sshd.user} \\(\\S*config:\\d+\\)`))
    assert.match(config, /host keys \S*known_hosts \(\S*config:\d+\)/)
    const text = await cli(['doctor', 'box'])
    assert.match(text.stdout, /^box\n {2}ok {3}config/)
  })

  test('terminal escapes from the remote are printed escaped, never raw', async () => {
    // A remote `opencode --version` that sets the window title and clears the screen.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-loud-'))
    await chmod(dir, 0o755)
    const fake = path.join(dir, 'opencode')
    await writeFile(fake, "#!/bin/sh\nprintf '1.18.33\\033]0;pwned\\007\\033[2J\\n'\n", { mode: 0o755 })
    const hostsFile = path.join(home, 'config', 'opencode', 'hosts.json')
    const hosts = await readFile(hostsFile, 'utf8')
    await writeFile(hostsFile, JSON.stringify({ hosts: { loud: { host: 'box', opencode: fake } } }))
    try {
      const text = await cli(['doctor', 'loud'])
      assert.doesNotMatch(text.stdout, /\x1b|\x07/)
      assert.match(text.stdout, /1\.18\.33\\u\{1b\}\]0;pwned\\u\{7\}\\u\{1b\}\[2J at /)
    } finally {
      await writeFile(hostsFile, hosts)
    }
  })

  test('a remote without opencode is reported with the install command', async () => {
    const { code, checks } = await doctor('bare')
    assert.equal(code, 1)
    assert.equal(checks.opencode.status, 'fail')
    assert.match(checks.opencode.fix, /npm i -g opencode-ai/)
  })

  test('a changed host key is reported with the ssh-keygen -R fix', async () => {
    const knownHosts = await readFile(ssh.knownHostsPath, 'utf8')
    const otherKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0mK4g1cD2iQ3Uq2V6m5Wm4o9f8mJ7c0yH2Q8lq1f3'
    await writeFile(ssh.knownHostsPath, `[127.0.0.1]:${sshd.port} ${otherKey}\n`)
    try {
      const { code, checks } = await doctor('box')
      assert.equal(code, 1)
      assert.equal(checks['host key'].status, 'fail')
      assert.match(checks['host key'].detail, /^CHANGED: .*known_hosts:1$/)
      assert.match(
        checks['host key'].fix,
        new RegExp(`ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${sshd.port}' -f `),
      )
    } finally {
      await writeFile(ssh.knownHostsPath, knownHosts)
    }
  })

  test('a key the server does not accept is reported with ssh-copy-id', async () => {
    const otherKey = path.join(home, '.ssh', 'id_other')
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey])
    const config = await readFile(ssh.configPath, 'utf8')
    await writeFile(ssh.configPath, config.replace(ssh.identityFile, otherKey))
    try {
      const { code, checks } = await doctor('box')
      assert.equal(code, 1)
      assert.equal(checks.auth.status, 'fail')
      assert.match(checks.auth.detail, /authentication to 'box' as .* failed: tried key file/)
      assert.match(checks.auth.fix, new RegExp(`^ssh-copy-id -i ${otherKey}\\.pub -p ${sshd.port} `))
    } finally {
      await writeFile(ssh.configPath, config)
    }
  })

  test('a stopped sshd is reported at the TCP step', async () => {
    await sshd.stopDaemon()
    try {
      const { code, checks } = await doctor('box')
      assert.equal(code, 1)
      assert.equal(checks.tcp.status, 'fail')
      assert.match(checks.tcp.detail, /Connection refused/)
      assert.match(checks.tcp.fix, /Start sshd on the host/)
      assert.equal(checks['host key'], undefined, 'later checks are not attempted')
    } finally {
      await sshd.restart()
    }
    assert.equal((await doctor('box')).code, 0)
  })

  test('a broken config file is reported with its fix', async () => {
    const file = path.join(home, 'config', 'opencode', 'hosts.jsonc')
    await writeFile(file, '{"hosts": {"oops": {"host": "box", "port": 22,}')
    try {
      const result = await cli(['doctor', '--json'])
      assert.equal(result.code, 1)
      const [report] = JSON.parse(result.stdout)
      assert.equal(report.host, '(config)')
      assert.match(report.checks[0].detail, /hosts\.jsonc: \(syntax\)/)
      assert.ok(report.checks[0].fix)
    } finally {
      await writeFile(file, '{}')
    }
    assert.ok(existsSync(file))
  })

  test('a provider host (workspaces only) needs no opencode; a remote_login host does', async () => {
    const plain = await startSshd()
    const file = path.join(home, 'config', 'opencode', 'hosts.jsonc')
    try {
      await plain.writeClientSshFiles(home, { alias: 'plain-box', keyName: 'id_plain' })
      await writeFile(
        file,
        JSON.stringify({
          hosts: { 'needs-oc': 'plain-box' },
          providers: { lab: { hosts: [{ name: 'ws-only', ssh: { host: 'plain-box' } }] } },
        }),
      )
      const workspaceOnly = await doctor('ws-only')
      assert.equal(workspaceOnly.checks.opencode.status, 'ok', JSON.stringify(workspaceOnly.report))
      assert.match(workspaceOnly.checks.opencode.detail, /not needed/)
      const login = await doctor('needs-oc')
      assert.equal(login.checks.opencode.status, 'fail', JSON.stringify(login.report))
    } finally {
      await writeFile(file, '{}')
      await plain.stop()
    }
  })

  test('a host this version cannot honour is refused alone; the others keep working', async () => {
    const file = path.join(home, 'config', 'opencode', 'hosts.jsonc')
    await writeFile(
      file,
      JSON.stringify({ hosts: { oops: { host: 'box', port: '22' }, win: { host: 'box', os: 'windows' } } }),
    )
    try {
      const result = await cli(['doctor', '--json'])
      assert.equal(result.code, 1)
      const reports = Object.fromEntries(JSON.parse(result.stdout).map((r) => [r.host, r]))
      assert.deepEqual(Object.keys(reports).sort(), ['bare', 'box', 'oops', 'win'])
      assert.match(reports.oops.checks[0].detail, /hosts\.jsonc: hosts\.oops\.port/)
      assert.match(reports.win.checks[0].detail, /hosts\.win\.os: Windows hosts are not supported yet/)
      assert.ok(
        reports.box.checks.every((c) => c.status !== 'fail'),
        JSON.stringify(reports.box, null, 2),
      )

      const list = await cli(['hosts', 'list'])
      assert.equal(list.code, 0, list.stderr)
      assert.match(list.stdout, /^box\s/m)
      assert.match(list.stdout, /^win\s+refused: .*Windows hosts are not supported yet/m)
      const json = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
      assert.deepEqual(
        json.filter((h) => h.refused).map((h) => h.name),
        ['oops', 'win'],
      )
    } finally {
      await writeFile(file, '{}')
    }
  })
})
