// The opencode-remote command as users of the two original tools run it: opencode-remote-ssh's CLI
// (`init`, `add <provider> <host> <user> [port] [identity-file]`, `remove <provider> <host>`, `list`),
// `migrate` of configs written the way each original README shows, and the output in an 80-column
// terminal (a real pseudo-terminal from util-linux `script`).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { beforeEach, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { repoRoot } from './support/package.mjs'

const run = promisify(execFile)
const BIN = path.join(repoRoot, 'bin', 'opencode-remote.js')

let home, env, configDir

async function cli(args, extraEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...env, ...extraEnv } })
    return { code: 0, stdout, stderr }
  } catch (error) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr }
  }
}

beforeEach(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'ocr-seed-'))
  configDir = path.join(home, 'config', 'opencode')
  await mkdir(configDir, { recursive: true })
  env = {
    PATH: process.env.PATH,
    USER: 'tester',
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
      ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
      : {}),
  }
})

const backups = async (dir, name) => (await readdir(dir)).filter((f) => f.startsWith(`${name}.bak-`))
const stripAnsi = (text) => text.replace(/\x1b\[[0-9;]*m/g, '')

// opencode-remote-ssh's README, "Recommended public configuration", as written there.
const SEED_B_CONFIG = `{
"plugin": [
[
"opencode-remote-provider",
{
"providers": {
"default": {
"strategy": "first_available",
"hosts": [
{
"name": "prod-web-1",
"ssh": {
"host": "203.0.113.10",
"user": "ops",
"port": 22,
"identityFile": "~/.ssh/id_ed25519"
},
"labels": ["linux", "production"]
}
]
}
}
}
]
]
}`

// opencode-remote-login's README, "Alternative: inline config", as written there.
const SEED_A_CONFIG = `// opencode.jsonc
{
  "plugin": [
    ["opencode-remote-login", {
      "hosts": {
        "pi": { "host": "wenjun@192.168.100.100" }
      }
    }]
  ]
}
`

describe('opencode-remote-ssh CLI forms', () => {
  test('init, add, list, remove with the original arguments, keeping comments and backups', async () => {
    const file = path.join(configDir, 'opencode.json')
    await writeFile(file, '{\n  // mine\n  "model": "a/b"\n}\n')
    const init = await cli(['init'])
    assert.equal(init.code, 0, init.stderr)
    assert.match(
      init.stdout,
      /added opencode-remote to the plugin list in ~\/config\/opencode\/opencode\.json/,
    )
    assert.equal((await cli(['init'])).stdout.includes('already in the plugin list'), true, 'idempotent')
    assert.equal((await backups(configDir, 'opencode.json')).length, 1)

    const add = await cli(['add', 'default', 'prod-web-1', 'ops', '2222', '~/.ssh/id_ed25519'])
    assert.equal(add.code, 0, add.stderr)
    assert.match(add.stdout, /added prod-web-1 to provider default in ~\/config\/opencode\/hosts\.json/)
    // A second host into the same provider goes where the provider is.
    assert.equal((await cli(['add', 'default', 'prod-web-2', 'ops'])).code, 0)
    const hosts = JSON.parse(await readFile(path.join(configDir, 'hosts.json'), 'utf8'))
    assert.deepEqual(hosts.providers.default.strategy, 'first_available')
    assert.deepEqual(
      hosts.providers.default.hosts.map((h) => [h.name, h.ssh]),
      [
        ['prod-web-1', { host: 'prod-web-1', user: 'ops', port: 2222, identityFile: '~/.ssh/id_ed25519' }],
        ['prod-web-2', { host: 'prod-web-2', user: 'ops' }],
      ],
    )

    const list = JSON.parse((await cli(['list', '--json'])).stdout)
    assert.deepEqual(
      list.map((h) => [h.name, h.provider, h.user, h.port, h.workspaceOnly]),
      [
        ['prod-web-1', 'default', 'ops', 2222, true],
        ['prod-web-2', 'default', 'ops', null, true],
      ],
    )
    const providers = await cli(['providers', 'list'])
    assert.match(
      providers.stdout,
      /^Provider: default\n {2}Strategy: first_available\n {2}- prod-web-1: ops@prod-web-1:2222\n/,
    )

    const removed = await cli(['remove', 'default', 'prod-web-1'])
    assert.equal(removed.code, 0, removed.stderr)
    assert.match(removed.stdout, /removed prod-web-1 from provider default/)
    // The single-name form finds the provider itself.
    assert.equal((await cli(['hosts', 'remove', 'prod-web-2'])).code, 0)
    assert.deepEqual(JSON.parse((await cli(['list', '--json'])).stdout), [])

    const unknown = await cli(['remove', 'default', 'nope'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /UNKNOWN_HOST/)
    const wrongProvider = await cli(['remove', 'lab', 'nope'])
    assert.match(wrongProvider.stderr, /no provider 'lab'; configured providers: default/)
    assert.equal(await readFile(file, 'utf8').then((t) => t.includes('// mine')), true)
  })

  test('a provider host in opencode.json (the original CLI kept them there) is added to and removed there', async () => {
    const file = path.join(configDir, 'opencode.json')
    await writeFile(file, SEED_B_CONFIG.replace('opencode-remote-provider', 'opencode-remote'))
    assert.equal((await cli(['add', 'default', 'prod-web-2', 'ops', '22'])).code, 0)
    const listed = await cli(['hosts', 'list'])
    assert.match(listed.stdout, /^prod-web-2 {2}ops@prod-web-2:22 {2}\(workspaces only\)$/m)
    assert.match(listed.stdout, /^ {4}provider default, labels linux production$/m)
    assert.match(listed.stdout, /^ {4}from opencode\.json \(plugin options\)$/m)
    const removed = await cli(['remove', 'default', 'prod-web-1'])
    assert.equal(removed.code, 0, removed.stderr)
    const config = JSON.parse(await readFile(file, 'utf8'))
    assert.deepEqual(
      config.plugin[0][1].providers.default.hosts.map((h) => h.name),
      ['prod-web-2'],
    )
  })

  test('init --project writes the project config as opencode plug would, and refuses beside an old entry', async () => {
    const project = path.join(home, 'proj')
    await mkdir(project)
    const result = await cli(['init', '--project', project])
    assert.equal(result.code, 0, result.stderr)
    const written = JSON.parse(await readFile(path.join(project, '.opencode', 'opencode.json'), 'utf8'))
    assert.deepEqual(written.plugin, ['opencode-remote'])

    await writeFile(path.join(configDir, 'opencode.jsonc'), SEED_A_CONFIG)
    const refused = await cli(['init'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /already loads opencode-remote-login.*opencode-remote migrate/s)
  })
})

describe('migrate', () => {
  test("opencode-remote-login's inline config: hosts kept, comments kept, backup; doctor suggests it first", async () => {
    const file = path.join(configDir, 'opencode.jsonc')
    await writeFile(file, SEED_A_CONFIG)
    const doctor = await cli(['doctor', '--json'])
    const plugins = JSON.parse(doctor.stdout).find((r) => r.host === '(plugins)')
    assert.equal(plugins.checks[0].status, 'warn')
    assert.match(plugins.checks[0].detail, /opencode\.jsonc loads opencode-remote-login/)
    assert.match(plugins.checks[0].fix, /^opencode-remote migrate/)

    const dry = await cli(['migrate', '--dry-run'])
    assert.match(dry.stdout, /would replace opencode-remote-login/)
    assert.equal(await readFile(file, 'utf8'), SEED_A_CONFIG)

    const result = await cli(['migrate'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /opencode\.jsonc: replaced opencode-remote-login with\s+opencode-remote/)
    assert.equal(
      await readFile(file, 'utf8'),
      SEED_A_CONFIG.replace('opencode-remote-login', 'opencode-remote'),
    )
    assert.equal((await backups(configDir, 'opencode.jsonc')).length, 1)
    const list = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
    assert.deepEqual(
      list.map((h) => [h.name, h.address]),
      [['pi', 'wenjun@192.168.100.100']],
    )
    const after = JSON.parse((await cli(['doctor', '--json'])).stdout)
    assert.equal(
      after.find((r) => r.host === '(plugins)'),
      undefined,
    )
    assert.match((await cli(['migrate'])).stdout, /nothing to migrate/)
  })

  test("opencode-remote-provider's config: providers kept; options without effect removed and named", async () => {
    const file = path.join(configDir, 'opencode.json')
    const withExtras = SEED_B_CONFIG.replace(
      '"providers": {',
      '"installRoot": "~/.opencode-remote",\n"tunnel": {"connectTimeoutMs": 15000},\n"providers": {',
    )
    await writeFile(file, withExtras)
    const result = await cli(['migrate'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /note: opencode-remote-provider: removed `installRoot`/)
    assert.match(result.stdout, /note: opencode-remote-provider: removed `tunnel`/)
    const config = JSON.parse(await readFile(file, 'utf8'))
    assert.equal(config.plugin[0][0], 'opencode-remote')
    assert.deepEqual(Object.keys(config.plugin[0][1]), ['providers'])
    const listed = await cli(['hosts', 'list'])
    assert.doesNotMatch(listed.stdout, /warning/)
    assert.match(listed.stdout, /^prod-web-1 {2}ops@203\.0\.113\.10:22 {2}\(workspaces only\)$/m)
  })

  test('path-based registration (development checkouts) in a project config', async () => {
    const project = path.join(home, 'proj')
    await mkdir(path.join(project, '.opencode'), { recursive: true })
    const file = path.join(project, '.opencode', 'opencode.json')
    await writeFile(
      file,
      JSON.stringify({
        plugin: [['/absolute/path/to/opencode-remote/plugin', { providers: { default: { hosts: [] } } }]],
      }),
    )
    const result = await cli(['migrate', '--project', project])
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).plugin, [
      ['opencode-remote', { providers: { default: { hosts: [] } } }],
    ])
  })
})

/** Run the CLI in a pseudo-terminal 80 columns wide; resolves to what the terminal showed. */
async function inTerminal(args, extraEnv = {}) {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')
  const { stdout } = await run('script', ['-qec', `stty cols 80 rows 40; ${quoted}`, '/dev/null'], {
    env: { ...env, TERM: 'xterm-256color', ...extraEnv },
  }).catch((error) => error)
  return stdout.replace(/\r\n/g, '\n')
}

describe('in an 80-column terminal', () => {
  test('help wraps at word boundaries within 80 columns', async () => {
    const words = /[A-Za-z]{3,}/
    for (const args of [['--help'], ['setup', '--help'], ['hosts', 'add', '--help'], ['migrate', '--help']]) {
      const shown = stripAnsi(await inTerminal(args))
      assert.match(shown, /Usage: opencode-remote/)
      const lines = shown.split('\n')
      for (const [i, line] of lines.entries()) {
        assert.ok(line.length <= 80, `${args.join(' ')}: line over 80 columns: ${JSON.stringify(line)}`)
        // A word cut by the terminal would continue at column 0 of the next line.
        if (line.length === 80 && words.test(line.slice(-1))) {
          assert.ok(!/^[a-z]/.test(lines[i + 1] ?? ''), `word broken after: ${JSON.stringify(line)}`)
        }
      }
    }
  })

  test('setup --help shows --stub-dir as an optional, advanced override', async () => {
    const shown = stripAnsi(await inTerminal(['setup', '--help']))
    assert.match(shown, /Usage: opencode-remote setup \[OPTIONS\] <HOST>\n/)
    assert.match(shown, /opencode-remote setup \[OPTIONS\] <HOST> <USER> \[PORT\] \[IDENTITY_FILE\]/)
    assert.doesNotMatch(shown.split('Advanced:')[0], /--stub-dir/, 'not among the everyday options')
    assert.match(shown, /Advanced:\n\s+--stub-dir <DIR>\s+Upload the stub binaries from DIR \(optional/)
  })

  test('ok/FAIL are coloured on a terminal only, and never with NO_COLOR or in a pipe', async () => {
    // A host whose port refuses at once: doctor fails at the TCP step without any sshd.
    await writeFile(path.join(configDir, 'hosts.json'), JSON.stringify({ hosts: { down: '127.0.0.1:1' } }))
    const coloured = await inTerminal(['doctor', 'down'])
    assert.match(coloured, /\x1b\[[0-9;]*m\s*ok/)
    assert.match(coloured, /\x1b\[[0-9;]*mFAIL/)
    const noColor = await inTerminal(['doctor', 'down'], { NO_COLOR: '1' })
    assert.match(noColor, /FAIL/)
    assert.doesNotMatch(noColor, /\x1b\[/)
    const piped = await cli(['doctor', 'down'])
    assert.match(piped.stdout, /FAIL tcp/)
    assert.doesNotMatch(piped.stdout, /\x1b\[/)
  })

  test('hosts list fits 80 columns, detail on indented lines, refused hosts marked', async () => {
    await writeFile(
      path.join(configDir, 'hosts.json'),
      JSON.stringify({
        hosts: {
          'a-rather-long-host-name': {
            host: 'deploy-user@build-server.with-a-long-domain.example.org',
            port: 2222,
            agent: 'build',
            model: 'anthropic/claude-sonnet-4-5-some-long-variant',
            directory: '~/work/a/deeply/nested/project/directory',
          },
          win: { host: 'me@10.0.0.9', os: 'windows' },
        },
        providers: {
          default: {
            hosts: [
              {
                name: 'protagmanager',
                aliases: ['protag', 'tagmgr'],
                ssh: { host: '159.203.115.52', user: 'root', port: 22 },
                labels: ['linux', 'remote', 'production', 'eu-west-1', 'big-memory'],
              },
            ],
          },
        },
      }),
    )
    const shown = stripAnsi(await inTerminal(['hosts', 'list']))
    for (const line of shown.split('\n')) assert.ok(line.length <= 80, JSON.stringify(line))
    assert.match(shown, /^protagmanager {2}root@159\.203\.115\.52:22 {2}\(workspaces only\)$/m)
    assert.match(
      shown,
      /^ {4}provider default, labels linux remote production eu-west-1 big-memory,\n {8}aliases protag tagmgr$/m,
    )
    assert.match(shown, /^win {2}refused: hosts\.win\.os: Windows hosts are not supported yet/m)
    assert.match(
      shown,
      /^ {4}agent build, model anthropic\/claude-sonnet-4-5-some-long-variant, directory\n/m,
    )
  })
})
