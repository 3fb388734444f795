// SSH workspaces as a user meets them: the real OpenCode TUI in tmux, OPENCODE_EXPERIMENTAL_WORKSPACES=1 (the
// README tells users to set it), the installed package as a plugin, `/warp` → "SSH host". The TUI asks for a
// workspace with `{type, branch: null}` and nothing else, so the adaptor must pick the host on its own (the
// default provider's strategy) and a failure must reach the screen without leaving a dead workspace behind.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startFakeLlm } from './harness/fake-llm.mjs'
import { makeOpencodeHome, opencodeBin, runOpencode } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { installPackedPackage } from './support/package.mjs'
import { sharingHelperPids } from './support/sharing.mjs'

const socket = `ocr-tui-${process.pid}`
let llm, sshd, local, pkg

/** tmux on this test's own server socket. */
function tmux(...args) {
  return execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' })
}
const screen = () => tmux('capture-pane', '-p', '-t', 'tui')
const keys = (...k) => tmux('send-keys', '-t', 'tui', ...k)
const type = (text) => tmux('send-keys', '-t', 'tui', '-l', text)

/** Poll the screen until `predicate(text)` holds; fail with the last screen after `timeoutMs`. */
async function waitForScreen(predicate, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const text = screen()
    if (predicate(text)) return text
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; screen:\n${text}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** The highlighted row of a dialog (tmux renders the selection with a 256-colour background). */
function selectedRow() {
  const rows = tmux('capture-pane', '-p', '-e', '-t', 'tui').split('\n')
  const row = rows.find((r) => r.includes('48;5;216'))
  return row?.replace(/\x1b\[[0-9;]*m/g, '').trim()
}

/**
 * Open `/warp` and choose the row titled `title`. The dialog lists the adaptors registered when it opens,
 * and the first start after `opencode plug` loads plugins late, so it is reopened until the row is there.
 */
async function warpTo(title, timeoutMs = 150_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    type('/warp')
    await waitForScreen((s) => /\/warp/.test(s), 'the /warp command in the prompt', 10_000)
    keys('Enter')
    const shown = await waitForScreen((s) => /New workspace/.test(s), 'the Warp dialog', 10_000)
    await new Promise((r) => setTimeout(r, 1000))
    if (screen().includes(title)) break
    assert.ok(Date.now() < deadline, `the Warp dialog never listed "${title}":\n${shown}`)
    keys('Escape')
    await new Promise((r) => setTimeout(r, 3000))
  }
  for (let i = 0; i < 10 && !selectedRow()?.startsWith(title); i++) {
    keys('Down')
    await new Promise((r) => setTimeout(r, 200))
  }
  assert.ok(selectedRow()?.startsWith(title), `"${title}" is selected: ${selectedRow()}`)
  keys('Enter')
}

async function startTui() {
  const env = { ...local.env, PWD: local.projectDir }
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`])
  tmux(
    'new-session',
    '-d',
    '-s',
    'tui',
    '-x',
    '160',
    '-y',
    '50',
    '-c',
    local.projectDir,
    ...envArgs,
    opencodeBin,
  )
  await waitForScreen(
    (s) => /ctrl\+p|tab/i.test(s) && /Ask anything|agents?/i.test(s),
    'the home screen',
    180_000,
  )
}

before(async () => {
  ;[llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  local = await makeOpencodeHome(path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-tui-ws-')), 'local'), {
    llm,
    env: { OPENCODE_EXPERIMENTAL_WORKSPACES: '1' },
  })
  await sshd.writeClientSshFiles(local.home, { alias: 'pi-box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({
      providers: {
        default: { strategy: 'first_available', hosts: [{ name: 'lab-box', ssh: { host: 'pi-box' } }] },
      },
    }),
  )
  // Installed the way the README says: `opencode plug` (it needs the npm registry client, so not offline).
  const { npm_config_offline: _offline, ...plugEnv } = local.env
  const plugged = await runOpencode(
    plugEnv,
    local.projectDir,
    ['plug', '-g', `opencode-remote@file:${pkg.tarball}`],
    {
      timeoutMs: 200_000,
    },
  )
  assert.equal(plugged.code, 0, plugged.stderr)
  await startTui()
})

after(async () => {
  try {
    tmux('kill-server')
  } catch {}
  await sshd?.stop()
  await llm?.stop()
})

/** Where a file named `name` is under `dir` (recursively), or undefined. */
function findFile(dir, name) {
  if (!existsSync(dir)) return undefined
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isFile() && entry.name === name) return p
    if (entry.isDirectory()) {
      const found = findFile(p, name)
      if (found) return found
    }
  }
  return undefined
}

describe('SSH workspaces in the TUI', () => {
  test('the TUI loads the plugin (its tool is offered with the first prompt)', async () => {
    type('hello local')
    keys('Enter')
    await waitForScreen((s) => /FAKE_REPLY: hello local/.test(s), 'the local reply')
    const tools = llm.requests.flatMap((b) => (b.tools ?? []).map((t) => t.function?.name))
    assert.ok(tools.includes('remote_login'), `offered tools: ${[...new Set(tools)].join(', ')}`)
  })

  test('/warp → SSH host moves the session to the default host and bash runs there', async () => {
    await warpTo('SSH host')
    const started = Date.now()
    // A failed create shows its error at once; waiting on would only hide it behind a timeout.
    const shown = await waitForScreen(
      (s) => /Warped to/.test(s) || /failed|cannot|refused/i.test(s),
      'the session to warp',
      300_000,
    )
    assert.match(shown, /Warped to/, 'the workspace create failed')
    console.log(`# warp took ${((Date.now() - started) / 1000).toFixed(1)} s`)
    const marker = `tui-proof-${process.pid}`
    type(`CALL_TOOL:bash {"command":"echo ${marker} > tui-proof.txt","description":"write proof"}`)
    keys('Enter')
    await waitForScreen((s) => /FAKE_TOOL_RESULT_SEEN/.test(s), 'the bash result')
    const remote = findFile(path.join(sshd.userHome, 'opencode-workspaces'), 'tui-proof.txt')
    assert.ok(remote, 'the file was written on the host')
    assert.equal(readFileSync(remote, 'utf8').trim(), marker)
    assert.equal(findFile(local.projectDir, 'tui-proof.txt'), undefined, 'nothing was written locally')
    // The bash call ran in the workspace server (another process than the one that created the workspace):
    // it reached the host through this user's connection-sharing helper, which the addon started from
    // beside itself in what `opencode plug` installed.
    assert.equal(
      sharingHelperPids(local.env.XDG_STATE_HOME).length,
      1,
      'one connection-sharing helper runs for this user',
    )
  })

  test('a file picked with @ reaches the model with the host’s text, not the local copy’s', async () => {
    // The same project file on both sides: the picker lists this machine's names (OpenCode answers that list
    // itself), the text must be the host's.
    const proof = findFile(path.join(sshd.userHome, 'opencode-workspaces'), 'tui-proof.txt')
    assert.ok(proof, 'the previous test left its proof on the host')
    const hostFile = path.join(path.dirname(proof), 'att-notes.md')
    await writeFile(hostFile, 'HOSTATTACH from the host\n')
    execFileSync('chown', [`--reference=${proof}`, hostFile])
    await writeFile(path.join(local.projectDir, 'att-notes.md'), 'LOCALATTACH from this machine\n')
    const before = llm.requests.length
    type('summarise @att-notes')
    await waitForScreen((s) => /att-notes\.md/.test(s), 'the @ picker listing att-notes.md', 30_000)
    keys('Enter')
    await waitForScreen((s) => /summarise @att-notes\.md/.test(s), 'the picked file in the prompt', 10_000)
    keys('Enter')
    await waitForScreen((s) => /FAKE_REPLY: summarise/.test(s), 'the reply', 120_000)
    const sent = JSON.stringify(llm.requests.slice(before).map((r) => r.messages))
    assert.match(sent, /HOSTATTACH from the host/, 'the model got the host’s text')
    assert.doesNotMatch(sent, /LOCALATTACH/, 'and nothing of the local copy')
  })
})
