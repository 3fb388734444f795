// The real OpenCode TUI in tmux, with the plugin installed the way the README says (`opencode plug -g`),
// one host behind a real sshd whose user runs the real `opencode`, and the fake LLM on both sides. Each
// case types a prompt the way a user would and reads the screen: progress during a round trip, the remote's
// text without a restart, failures and hand-overs shown directly, Esc during the wait.
// One world and one TUI serve every case: after `opencode plug` the first TUI start waits on a stale lock.
import assert from 'node:assert/strict'
import { chown, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { messageText, startFakeLlm } from './harness/fake-llm.mjs'
import { makeOpencodeHome, opencodeConfig, remoteOpencodeEnv, runOpencode } from './harness/opencode.mjs'
import { startSshd } from './harness/sshd.mjs'
import { startTui } from './harness/tui.mjs'
import { installPackedPackage } from './support/package.mjs'

const isRemote = (body) => body.model === 'remote-m'
const lastUserText = (body) =>
  messageText([...(body.messages ?? [])].reverse().find((m) => m.role === 'user'))
const call = (args) => `CALL_TOOL:remote_login ${JSON.stringify(args)}`

/** A loopback port nothing listens on: the "sshd is down" host. */
async function closedPort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Watch the remote's job directories for a `done` stamp (ns since the epoch, written by the remote run
 * script when `opencode run` ended). The client removes a job once collected, so the stamp is read while
 * the job still exists. `stop()` resolves the first stamp seen, in ms, or undefined.
 */
function watchDone(userHome) {
  const jobs = path.join(userHome, '.opencode-remote', 'jobs')
  let found
  let running = true
  const loop = (async () => {
    while (running && found === undefined) {
      for (const id of await readdir(jobs).catch(() => [])) {
        const ns = (await readFile(path.join(jobs, id, 'done'), 'utf8').catch(() => '')).trim()
        if (/^\d{19}$/.test(ns)) found = Number(BigInt(ns) / 1000n) / 1000
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return found
    },
  }
}

/** Interrupt the running turn the way a user does: Esc, then Esc again when the TUI asks for it. */
async function interrupt(tui) {
  await tui.press('Escape')
  await tui.waitForScreen(/again to interrupt/, 10_000)
  await tui.press('Escape')
}

describe('the real TUI', { timeout: 900_000 }, () => {
  let llm, sshd, tui
  /** Remote replies wait on this (released per case), so the round trip's wait is visible. */
  let gate = Promise.resolve()
  let release = () => {}
  const hold = () => {
    gate = new Promise((resolve) => (release = resolve))
  }

  before(async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'ocr-tui-'))
    let pkg
    ;[llm, sshd, pkg] = await Promise.all([
      startFakeLlm(),
      startSshd({ env: remoteOpencodeEnv() }),
      installPackedPackage(),
    ])
    llm.setResponder(async (body) => {
      if (!isRemote(body) || !Array.isArray(body.tools) || body.tools.length === 0) return undefined
      const last = body.messages?.at(-1)
      if (last?.role === 'tool') return undefined
      const text = lastUserText(body)
      const marker = /REMOTE_TASK_(\w+)/.exec(text)
      if (!marker) return undefined
      await gate
      return { text: `remote answer ${marker[1].toLowerCase()} ready` }
    })
    // The remote user's own OpenCode config (its own model), as on a real host.
    const dir = path.join(sshd.userHome, '.config', 'opencode')
    await mkdir(dir, { recursive: true })
    await writeFile(
      path.join(dir, 'opencode.json'),
      JSON.stringify(opencodeConfig({ baseURL: llm.baseURL, model: 'fake/remote-m' })),
    )
    for (const p of [path.join(sshd.userHome, '.config'), dir, path.join(dir, 'opencode.json')])
      await chown(p, sshd.uid, sshd.uid)
    // A fresh host: its user has never run OpenCode (the first round trip creates its database).

    const local = await makeOpencodeHome(path.join(root, 'local'), { llm })
    await sshd.writeClientSshFiles(local.home, { alias: 'pi-box' })
    await sshd.writeClientSshFiles(local.home, {
      alias: 'down-box',
      via: { host: '127.0.0.1', port: await closedPort() },
    })
    // README's minimal hosts.json entries: a name and an ~/.ssh/config alias.
    await writeFile(
      path.join(local.config, 'opencode', 'hosts.json'),
      JSON.stringify({ hosts: { pi: 'pi-box', down: 'down-box' } }),
    )
    // README: `opencode plug -g opencode-remote@…`. plug fetches the plugin's dependencies itself.
    const { npm_config_offline: _offline, ...plugEnv } = local.env
    const plug = await runOpencode(
      plugEnv,
      local.projectDir,
      ['plug', '-g', `opencode-remote@file:${pkg.tarball}`],
      { timeoutMs: 200_000 },
    )
    assert.equal(plug.code, 0, `opencode plug failed:\n${plug.stdout}\n${plug.stderr}`)

    tui = await startTui({ env: local.env, cwd: local.projectDir })
    await tui.waitForScreen(/Ask anything/, 150_000)
  })

  after(async () => {
    release()
    await tui?.stop()
    await Promise.allSettled([llm?.stop(), sshd?.stop()])
  })

  it('shows a failure on screen: an unknown host, and a host whose sshd is down', async () => {
    await tui.send(call({ host: 'nowhere', mode: 'round-trip', message: 'x' }))
    await tui.waitForScreen(/remote_login to nowhere failed/, 60_000)
    await tui.waitForScreen(/(unknown host|not configured|UNKNOWN_HOST)[\s\S]*/i, 10_000)
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)

    await tui.send(call({ host: 'down', mode: 'round-trip', message: 'x' }))
    const { screen } = await tui.waitForScreen(/remote_login to down failed/, 90_000)
    assert.match(screen, /down/)
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)
  })

  it('round trip: live progress during the wait, then the remote text on screen without a restart', async (t) => {
    hold()
    const remoteAsked = llm.waitFor((b) => isRemote(b) && /REMOTE_TASK_ALPHA/.test(lastUserText(b)), 120_000)
    await tui.send(call({ host: 'pi', mode: 'round-trip', message: 'REMOTE_TASK_ALPHA' }))
    await remoteAsked
    // Progress: host, phase and elapsed time, and the elapsed time moves.
    const first = await tui.waitForScreen(/pi · waiting (\d+:\d\d)/, 30_000)
    const firstClock = /pi · waiting (\d+:\d\d)/.exec(first.screen)[1]
    await tui.waitForScreen(new RegExp(`pi · waiting (?!${firstClock})\\d+:\\d\\d`), 30_000)
    const done = watchDone(sshd.userHome)
    release()
    const seen = await tui.waitForScreen(/remote answer alpha ready/, 120_000, 20)
    const doneMs = await done.stop()
    // A figure, not an assertion: printed for the report and the bench.
    const visible =
      doneMs === undefined
        ? 'not measured (job collected between polls)'
        : `${Math.round(seen.at - doneMs)} ms`
    t.diagnostic(`remote finished -> visible in the TUI: ${visible}`)
    console.log(`TUI_VISIBLE remote finished -> visible in the TUI: ${visible}`)
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)
  })

  it('Esc during the wait: says it was cancelled and what became of the remote run; the next one works', async () => {
    hold()
    const remoteAsked = llm.waitFor((b) => isRemote(b) && /REMOTE_TASK_BETA/.test(lastUserText(b)), 120_000)
    await tui.send(call({ host: 'pi', mode: 'round-trip', message: 'REMOTE_TASK_BETA' }))
    await remoteAsked
    await tui.waitForScreen(/pi · waiting/, 30_000)
    await interrupt(tui)
    const { screen } = await tui.waitForScreen(/cancelled/i, 60_000)
    assert.match(screen, /stopped|left running/i)
    release()
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)

    const asked = llm.waitFor((b) => isRemote(b) && /REMOTE_TASK_GAMMA/.test(lastUserText(b)), 120_000)
    await tui.send(call({ host: 'pi', mode: 'round-trip', message: 'REMOTE_TASK_GAMMA' }))
    await asked
    await tui.waitForScreen(/remote answer gamma ready/, 120_000)
  })

  it('one-way: the hand-over is marked on screen', async () => {
    release()
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)
    await tui.send(call({ host: 'pi', mode: 'one-way', message: 'REMOTE_TASK_DELTA' }))
    await tui.waitForScreen(/Handed over to pi/, 120_000)
    await tui.waitForScreenWithout(/esc interrupt/i, 60_000)
    // The transcript keeps the mark after the toast is gone, and the local model took no turn after it.
    await tui.waitForScreenWithout(/Handed over to pi/, 30_000)
    await tui.waitForScreen(/── handed over to pi ──/, 30_000)
    await tui.waitForScreen(/This session now continues on pi; this copy stops here\./, 30_000)
    const local = llm.requests.filter(
      (b) => !isRemote(b) && /continues on pi/.test(JSON.stringify(b.messages)),
    )
    assert.equal(local.length, 0, 'no local LLM step after the hand-over')
  })
})
