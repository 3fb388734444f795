// A workspace whose server is slow to load its project still comes up. OpenCode gives a new workspace 5 s
// after the adaptor's `create` returns to answer its first sync, then fails the create ("Timed out waiting for
// global event"); a cold machine, or a user's own heavy plugin, makes the workspace's `opencode serve` take
// longer than that to load config and plugins. Here the user has such a plugin (8 s to start), through the
// real control plane.
import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { startFakeLlm } from './harness/fake-llm.mjs'
import { makeOpencodeHome, startServe } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'

const PLUGIN_START_MS = 8000
let llm, sshd, local, serve

before(async () => {
  let pkg
  ;[llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  const root = await mkdtemp(path.join(os.tmpdir(), 'ocr-slow-start-'))
  const slowPlugin = path.join(root, 'slow-plugin.mjs')
  await writeFile(
    slowPlugin,
    `export default { id: 'slow-to-start', server: async () => {
  await new Promise((resolve) => setTimeout(resolve, ${PLUGIN_START_MS}))
  return {}
} }\n`,
  )
  local = await makeOpencodeHome(path.join(root, 'local'), {
    llm,
    plugins: [`file://${pkg.packageDir}`, `file://${slowPlugin}`],
    env: { OPENCODE_EXPERIMENTAL_WORKSPACES: '1' },
  })
  await sshd.writeClientSshFiles(local.home, { alias: 'box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { slow: 'box' } }),
  )
  serve = await startServe(local.env, local.projectDir)
})

after(async () => {
  await serve?.stop()
  await sshd?.stop()
  await llm?.stop()
})

test('a workspace whose server takes longer than OpenCode’s 5 s to load its plugins is created and connected', async () => {
  const query = `directory=${encodeURIComponent(local.projectDir)}`
  const started = Date.now()
  const ws = await serve.client.post(
    `/experimental/workspace?${query}`,
    { type: 'ssh-provider', extra: { host: 'slow' } },
    { timeoutMs: 240_000, retries: 0 },
  )
  const tookMs = Date.now() - started
  assert.ok(tookMs > PLUGIN_START_MS, `the create waited for the plugins (${tookMs} ms)`)
  const statuses = await serve.client.get(`/experimental/workspace/status?${query}`)
  assert.equal(statuses.find((s) => s.workspaceID === ws.id)?.status, 'connected', JSON.stringify(statuses))
  const paths = await serve.client.get(`/path?workspace=${ws.id}&${query}`)
  assert.match(paths.directory, /opencode-workspaces/, 'the workspace answers from the host')
  await serve.client.delete(`/experimental/workspace/${ws.id}?${query}`)
})
