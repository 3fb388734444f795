// Password-only hosts wherever they are defined: `setup --password-stdin` installs a generated key and
// records it as the host's identityFile in the place that defines the host (a provider's host in
// hosts.json, the plugin options in opencode.jsonc), so the next connection needs no password. Without a
// terminal or --password-stdin, setup prints the manual authorized_keys steps with the public key
// (opencode-remote-ssh's setup did), and they work. A real sshd with password authentication.
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { appendFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

/** The installed package's CLI: it holds the stubs that setup uploads. */
let BIN
const PASSWORD = 'once-only-secret'
let server

before(async () => {
  ;[server, { bin: BIN }] = await Promise.all([
    startSshd({ extraConfig: ['PasswordAuthentication yes'] }),
    installPackedPackage(),
  ])
  const chpasswd = spawnSync('chpasswd', { input: `${server.user}:${PASSWORD}\n` })
  assert.equal(chpasswd.status, 0, String(chpasswd.stderr))
})

after(async () => {
  await server?.stop()
})

/** A local home that knows the server's host key and has no key of its own. */
async function freshHome() {
  const home = await mkdtemp(path.join(os.tmpdir(), 'ocr-pwd-'))
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 })
  await writeFile(path.join(home, '.ssh', 'known_hosts'), server.knownHostsLine + '\n')
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    USER: 'tester',
    XDG_CONFIG_HOME: path.join(home, 'config'),
    ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
      ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
      : {}),
  }
  return { home, env, configDir: path.join(home, 'config', 'opencode') }
}

function cli(env, args, input) {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env }, (error, stdout, stderr) =>
      resolve({ code: error?.code ?? 0, stdout, stderr }),
    )
    child.stdin.end(input ?? '')
  })
}

async function setupTwice(env, host) {
  const first = await cli(env, ['setup', host, '--json', '--password-stdin'], `${PASSWORD}\n`)
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stderr, new RegExp(`installed a new key for ${host}`))
  // No password now: the recorded key alone logs in.
  const second = await cli(env, ['setup', host, '--json'])
  assert.equal(second.code, 0, second.stderr)
  assert.equal(JSON.parse(second.stdout).reused, true)
}

test("a provider's host in hosts.json gets ssh.identityFile", async () => {
  const { home, env, configDir } = await freshHome()
  const file = path.join(configDir, 'hosts.json')
  await writeFile(
    file,
    JSON.stringify({
      providers: {
        lab: { hosts: [{ name: 'pw', ssh: { host: '127.0.0.1', port: server.port, user: server.user } }] },
      },
    }),
  )
  await setupTwice(env, 'pw')
  const hosts = JSON.parse(await readFile(file, 'utf8'))
  assert.equal(hosts.providers.lab.hosts[0].ssh.identityFile, path.join(home, '.ssh', 'opencode-remote_pw'))
})

test('a host in the plugin options of opencode.jsonc gets identityFile there, comments kept', async () => {
  const { home, env, configDir } = await freshHome()
  const file = path.join(configDir, 'opencode.jsonc')
  await writeFile(
    file,
    `// my config\n{\n  "plugin": [["opencode-remote", {"hosts": {"pw": {"host": "127.0.0.1", "port": ${server.port}, "user": "${server.user}"}}}]] // inline\n}\n`,
  )
  await setupTwice(env, 'pw')
  const text = await readFile(file, 'utf8')
  assert.match(text, /^\/\/ my config\n/)
  assert.match(text, /\/\/ inline\n/)
  const key = path.join(home, '.ssh', 'opencode-remote_pw')
  assert.ok(text.includes(`"identityFile": "${key}"`), text)
})

test('without a terminal or --password-stdin, setup <host> <user> <port> prints the manual steps, and they work', async () => {
  const { home, env, configDir } = await freshHome()
  const refused = await cli(env, ['setup', '127.0.0.1', server.user, String(server.port)])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /added 127\.0\.0\.1 to provider default in ~\/config\/opencode\/hosts\.json/)
  assert.match(refused.stderr, /AUTH_FAILED/)
  const key = path.join(home, '.ssh', 'opencode-remote_127.0.0.1')
  const publicKey = (await readFile(`${key}.pub`, 'utf8')).trim()
  assert.ok(refused.stderr.includes(`\n    ${publicKey}\n`), refused.stderr)
  assert.ok(refused.stderr.includes(`echo '${publicKey}' >> ~/.ssh/authorized_keys`), refused.stderr)
  assert.ok(
    refused.stderr.includes(
      `ssh-copy-id -i ~/.ssh/opencode-remote_127.0.0.1.pub -p ${server.port} ${server.user}@127.0.0.1`,
    ),
    refused.stderr,
  )
  const hosts = JSON.parse(await readFile(path.join(configDir, 'hosts.json'), 'utf8'))
  assert.deepEqual(hosts.providers.default.hosts[0].ssh, {
    host: '127.0.0.1',
    user: server.user,
    port: server.port,
    identityFile: key,
  })

  // Do what the steps say, on the host; then setup needs nothing more.
  await appendFile(path.join(server.userHome, '.ssh', 'authorized_keys'), publicKey + '\n')
  const done = await cli(env, ['setup', '127.0.0.1', '--json'])
  assert.equal(done.code, 0, done.stderr)
})
