// The linux-arm64-gnu addon's smoke test (scripts/smoke-arm64.sh builds the addon and unpacks Debian's
// arm64 nodejs). One file, two roles:
//   on x86_64 (the driver): starts a test sshd on 127.0.0.1 (the tests' harness), writes a temp home with an
//     SSH config, hosts.json and the stubs, runs this file under `qemu-aarch64 -L <root> <root>/usr/bin/node`
//     and checks what it reports;
//   on arm64 (under qemu): loads the addon and reports configSchema, listHosts, warmHost (an SSH connection)
//     and `setup` (probe, stub upload, tunnel and health) on one line starting with `SMOKE `.
// Usage: node scripts/smoke-arm64.mjs <addon.node> <arm64 root>   (as root: the sshd's remote user is created)
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

if (process.arch === 'arm64') {
  const [addonPath, stubDir] = process.argv.slice(2)
  const addon = createRequire(import.meta.url)(path.resolve(addonPath))
  const report = { arch: process.arch, node: process.version }
  const schema = addon.configSchema('hosts')
  report.schemaTitle = schema?.title ?? null
  report.schemaHasHosts = Boolean(schema?.properties?.hosts)
  const hosts = await addon.listHosts(os.tmpdir())
  report.hosts = hosts instanceof Error ? `${hosts.code}: ${hosts.message}` : hosts
  report.warm = await addon.warmHost('box')
  report.setup = await addon.runCli(['setup', 'box', '--json'], stubDir)
  console.log(`SMOKE ${JSON.stringify(report)}`)
  process.exit(0)
}

const [addonPath, root] = process.argv.slice(2)
if (!addonPath || !root) {
  console.error('usage: node scripts/smoke-arm64.mjs <addon.node> <arm64 root>')
  process.exit(2)
}
const { startSshd } = await import('../__test__/harness/sshd.mjs')
const { repoRoot } = await import('../__test__/harness/opencode.mjs')
const { writeTestStubs } = await import('../__test__/support/stub.mjs')

const home = await mkdtemp(path.join(os.tmpdir(), 'ocr-smoke-arm64-'))
const sshd = await startSshd()
let failed = false
try {
  await sshd.writeClientSshFiles(home, { alias: 'box' })
  await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
  await writeFile(
    path.join(home, 'config', 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { box: 'box' } }),
  )
  const stubDir = path.join(home, 'stubs')
  const arches = await writeTestStubs(repoRoot, stubDir)
  const started = Date.now()
  const { code, stdout, stderr } = await new Promise((resolve) => {
    const child = spawn(
      'qemu-aarch64',
      ['-L', root, path.join(root, 'usr/bin/node'), import.meta.filename, addonPath, stubDir],
      {
        env: { HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), PATH: process.env.PATH },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 300_000,
      },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
  const line = stdout.split('\n').find((l) => l.startsWith('SMOKE '))
  const report = line ? JSON.parse(line.slice('SMOKE '.length)) : null
  const checks = [
    ['runs as arm64 under qemu-aarch64', report?.arch === 'arm64'],
    ['configSchema("hosts") describes hosts.json', report?.schemaHasHosts === true],
    ['listHosts reads the temp hosts.json', JSON.stringify(report?.hosts) === '["box"]'],
    ['warmHost connects to the test sshd', report?.warm === true],
    [`setup uploads and starts the ${arches.join('/')} stub and finds it healthy`, report?.setup === 0],
  ]
  console.log(
    `arm64 node ${report?.node ?? '?'}, ${((Date.now() - started) / 1000).toFixed(1)} s under qemu:`,
  )
  for (const [what, ok] of checks) {
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`)
    failed ||= !ok
  }
  if (failed) console.error(`exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`)
} finally {
  await sshd.stop()
  await rm(home, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
