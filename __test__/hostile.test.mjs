// Hostile input end to end, through the real processes: host names, aliases, directories, messages,
// session ids and config values with quotes, `$()`, backticks, `;`, newlines, NUL, option injection, 100 KB
// and non-UTF-8 text, fed through (1) the remote_login tool as the model calls it (real opencode serve +
// packed plugin + fake LLM), (2) the JS API and (3) the CLI; and hostile back-files from a remote whose
// `opencode` is a script. Nothing may run (marker files, checked locally and in the remote HOME), every
// refusal names its field without leaking addresses or paths, config files stay intact, and the local
// session is never overwritten.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chown, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { messageText as chatText } from './harness/fake-llm.mjs'
import { opencodePath } from './harness/opencode.mjs'
import { repoRoot } from './support/package.mjs'
import { stubBinaryDir } from './support/stub.mjs'
import { recordSummary } from './support/summary.mjs'
import { startWorld } from './support/world.mjs'

const require = createRequire(import.meta.url)
const BIN = path.join(repoRoot, 'bin', 'opencode-remote.js')
const RAND = randomBytes(4).toString('hex')
/** Any hostile text that gets executed creates one of these. */
const MARK = path.join(os.tmpdir(), `ocr-pwned-${RAND}`)
const REL_MARK = `ocr-pwned-${RAND}`

/** The hostile strings, by name. `nonUtf8` is how invalid UTF-8 reaches JSON and JS: lone surrogates. */
const HOSTILE = {
  quotes: `it's "double" \\"escaped\\" 'single'`,
  subst: `$(touch ${MARK})`,
  backticks: `\`touch ${MARK}\``,
  semicolon: `x; touch ${MARK}; touch ${REL_MARK}`,
  newline: `x\ntouch ${MARK}\ntouch ${REL_MARK}\n`,
  nul: `x\u0000touch ${MARK}`,
  option: `-oProxyCommand=touch ${MARK}`,
  long: `L${'A'.repeat(100 * 1024)}`,
  nonUtf8: `bad-\udcff-\ud800-utf8`,
}
const NAMES = Object.keys(HOSTILE)

let world, llm, sshd, local, serve, fakeDir

function assertNothingRan() {
  for (const file of [
    MARK,
    path.join(sshd.userHome, REL_MARK),
    path.join(local.home, REL_MARK),
    path.join(local.projectDir, REL_MARK),
  ]) {
    assert.ok(!existsSync(file), `${file} exists: hostile input was executed`)
  }
}

/** What the model must never see: addresses, ports, users, key and home paths. */
function assertNoLeaks(text) {
  const secrets = ['127.0.0.1', `:${sshd.port}`, sshd.user, sshd.clientKey, local.home, sshd.userHome]
  for (const secret of secrets) assert.ok(!text.includes(secret), `"${secret}" leaked into: ${text}`)
}

function toolParts(messages, tool = 'remote_login') {
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool' && p.tool === tool))
}

const finished = (p) => p.state?.status === 'completed' || p.state?.status === 'error'

/** Tool calls the fake LLM makes when a user turn says `HOSTILE_TURN:<name>`. */
const turns = new Map()

async function runTurn(sessionID, name, toolCalls) {
  turns.set(name, toolCalls)
  await world.prompt(sessionID, `HOSTILE_TURN:${name}`)
  const messages = await waitForTools(sessionID, toolCalls.length)
  return toolParts(messages).slice(-toolCalls.length)
}

async function waitForTools(sessionID, count, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const parts = toolParts(messages)
    if (parts.length >= count && parts.every(finished)) return messages
    assert.ok(Date.now() < deadline, `tool calls still running: ${JSON.stringify(parts.map((p) => p.state))}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** A file the remote user can read, written as root atomically. */
async function writeRemote(file, data) {
  const temp = `${file}.tmp-${RAND}`
  await writeFile(temp, data)
  await chown(temp, sshd.uid, sshd.uid)
  await rename(temp, file)
}

/** The remote's job directories, by their `message.txt`. */
async function remoteJobs() {
  const dir = path.join(sshd.userHome, '.opencode-remote', 'jobs')
  const jobs = []
  for (const id of await readdir(dir).catch(() => [])) {
    const read = (f) => readFile(path.join(dir, id, f)).catch(() => null)
    jobs.push({ id, message: await read('message.txt'), directory: await read('directory') })
  }
  return jobs
}

// A stand-in for the remote `opencode`: import keeps what it was given, run records its arguments,
// export answers with whatever the test put in back.json.
const FAKE_OPENCODE = `#!/bin/sh
d=$(dirname "$0")
case $1 in
  import) cp "$2" "$d/imported.json" ;;
  run) printf '%s\\0' "$@" > "$d/run-argv"; cat > /dev/null ;;
  export)
    i=0
    while [ ! -f "$d/back.json" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
    cat "$d/back.json" ;;
esac
`

before(async () => {
  world = await startWorld({
    hosts: { pi: { host: 'pi-box' } },
    llm: {
      responder(body) {
        if (!body.tools?.length) return undefined
        const last = body.messages.at(-1)
        if (last?.role !== 'user') return undefined
        const name = /HOSTILE_TURN:(\S+)/.exec(chatText(last))?.[1]
        return name && turns.has(name) ? { rule: 'hostile', toolCalls: turns.get(name) } : undefined
      },
    },
  })
  ;({ llm, sshd, local, serve } = world)
  fakeDir = path.join(sshd.userHome, 'fake-oc')
  await mkdir(fakeDir)
  await writeFile(path.join(fakeDir, 'opencode'), FAKE_OPENCODE, { mode: 0o755 })
  for (const p of [fakeDir, path.join(fakeDir, 'opencode')]) await chown(p, sshd.uid, sshd.uid)
  // Hosts are read at every call: "forged" runs the script above instead of opencode.
  const forged = { host: 'pi-box', opencode: path.join(fakeDir, 'opencode'), timeoutSecs: 120 }
  await writeFile(
    world.hostsFile,
    `// hosts\n${JSON.stringify({ hosts: { pi: { host: 'pi-box' }, forged } })}\n`,
  )
})

after(async () => {
  await world?.stop()
  await rm(MARK, { force: true })
})

describe('remote_login as the model calls it', () => {
  test('hostile host names and modes are refused, naming the field, leaking nothing', async () => {
    const sessionID = await world.newSession()
    const calls = [
      ...NAMES.map((name) => ({ name: 'remote_login', args: { host: HOSTILE[name] } })),
      { name: 'remote_login', args: { host: 'forged', mode: `round-trip; touch ${MARK}` } },
    ]
    const parts = await runTurn(sessionID, 'hosts', calls)
    assert.equal(parts.length, calls.length)
    for (const [i, part] of parts.entries()) {
      const error = String(part.state.error ?? '')
      assert.equal(part.state.status, 'error', `${NAMES[i] ?? 'mode'}: ${JSON.stringify(part.state)}`)
      if (i < NAMES.length) {
        assert.match(error, /^Unknown host '.*'\. Configured hosts: forged, pi\.$/s, NAMES[i])
        assert.ok(error.length < 200, `${NAMES[i]}: the echo of the name is bounded (${error.length})`)
        assert.doesNotMatch(error, /[\u0000-\u001f]/, `${NAMES[i]}: no control characters`)
      } else {
        assert.match(error, /mode/, 'the refusal names the mode')
      }
      assertNoLeaks(error)
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'remote_login tool: hostile host and mode refused',
      ok: true,
      inputs: calls.length,
      userSees: 'UNKNOWN_HOST (name sanitized, ≤64 chars) / invalid mode',
    })
  })

  test('hostile directories and messages arrive verbatim as data, or are refused naming the field', async () => {
    const sessionID = await world.newSession()
    // A file where the directory should go: mkdir fails on the remote.
    await writeRemote(path.join(sshd.userHome, 'blocker'), 'a file\n')
    const cases = [
      ...NAMES.map((name) => ({
        name,
        directory: `hostile-dir/${name}-${HOSTILE[name]}`,
        text: HOSTILE[name],
      })),
      { name: 'nul in message only', directory: 'hostile-dir/nul-message', text: HOSTILE.nul },
      { name: 'long part', directory: `hostile-dir/${'n'.repeat(300)}`, text: 'x' },
      { name: 'not creatable', directory: 'blocker/sub', text: 'x' },
    ].map((c, i) => ({ ...c, message: `case-${i}: ${c.text}` }))
    // Refused before anything is sent: no path holds a NUL (a shell would silently drop it and use
    // another directory), none is 100 KB long or has a 300-byte part.
    const invalid = new Set(['nul', 'long', 'long part'])
    const parts = await runTurn(
      sessionID,
      'directories',
      cases.map(({ directory, message }) => ({
        name: 'remote_login',
        args: { host: 'forged', directory, message },
      })),
    )
    const jobs = await remoteJobs()
    const outcomes = {}
    for (const [i, c] of cases.entries()) {
      const { state } = parts[i]
      assertNoLeaks(`${state.output ?? ''} ${state.error ?? ''}`)
      const job = jobs.find((j) => j.message?.includes(Buffer.from(`case-${i}: `)))
      if (invalid.has(c.name)) {
        assert.equal(state.status, 'error', c.name)
        assert.match(state.error, /^Invalid `directory`: /, `${c.name}: the refusal names the directory`)
        assert.ok(state.error.length < 200, `${c.name}: bounded error`)
        assert.equal(job, undefined, `${c.name}: nothing dispatched`)
        outcomes[c.name] = 'INVALID_ARGUMENT'
        continue
      }
      if (c.name === 'not creatable') {
        assert.equal(state.status, 'error', c.name)
        assert.match(
          state.error,
          /working directory could not be created.*\nLast log lines:\n(File exists|Not a directory)$/s,
        )
        outcomes[c.name] = 'REMOTE_RUN_FAILED (reason only)'
        continue
      }
      assert.equal(state.status, 'completed', `${c.name}: ${JSON.stringify(state)}`)
      assert.ok(job, `${c.name}: the job was dispatched`)
      // Exactly as the model sent it (lone surrogates become U+FFFD, as anything non-UTF-8 does).
      assert.deepEqual(job.directory, Buffer.from(c.directory), `${c.name}: directory verbatim`)
      assert.ok(job.message.includes(Buffer.from(c.message)), `${c.name}: message verbatim`)
      const workdir = await readFile(path.join(sshd.userHome, '.opencode-remote', 'jobs', job.id, 'workdir'))
      assert.deepEqual(workdir, Buffer.from(path.join(sshd.userHome, c.directory)), c.name)
      assert.ok(existsSync(path.join(sshd.userHome, c.directory)), `${c.name}: created verbatim`)
      outcomes[c.name] = 'verbatim'
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'remote_login tool: hostile directory + message',
      ok: true,
      inputs: cases.length * 2,
      userSees: JSON.stringify(outcomes),
    })
  })
})

describe('the API', () => {
  let api
  before(() => {
    Object.assign(process.env, local.env)
    delete process.env.SSH_AUTH_SOCK
    api = require('../api.js')
  })

  async function refusal(promise) {
    try {
      await promise
    } catch (error) {
      return error
    }
    assert.fail('accepted')
  }

  test('remoteLogin refuses hostile session ids, hosts, modes, directories and config values', async () => {
    const base = { sessionId: 'ses_hostile1', host: 'forged', projectDir: local.projectDir }
    const expectations = []
    const expect = (options, code, field) =>
      expectations.push({ options: { ...base, ...options }, code, field })
    for (const name of NAMES) {
      expect({ sessionId: HOSTILE[name] }, 'SESSION_INVALID', /session id/)
      expect({ sessionId: `ses_${HOSTILE[name]}` }, 'SESSION_INVALID', /session id/)
      expect({ host: HOSTILE[name] }, 'UNKNOWN_HOST', /Unknown host/)
      expect({ mode: HOSTILE[name] }, 'INVALID_ARGUMENT', /mode/)
      // Inline options come from the user's opencode.json: a hostile entry is a config error there.
      expect({ host: 'x', options: { hosts: { x: HOSTILE[name] } } }, 'CONFIG_INVALID', /hosts\.x/)
      expect(
        { host: 'x', options: { hosts: { x: { host: 'pi-box', directory: HOSTILE[name] } } } },
        name === 'quotes' ||
          name === 'subst' ||
          name === 'backticks' ||
          name === 'semicolon' ||
          name === 'option' ||
          name === 'long' ||
          name === 'nonUtf8'
          ? null // printable: accepted as data
          : 'CONFIG_INVALID',
        /hosts\.x\.directory/,
      )
    }
    for (const name of ['nul', 'long']) {
      expect({ directory: `d/${HOSTILE[name]}` }, 'INVALID_ARGUMENT', /directory/)
    }
    expect({ message: `m${HOSTILE.nul}` }, 'INVALID_ARGUMENT', /message/)
    let inputs = 0
    for (const { options, code, field } of expectations) {
      if (code === null) continue
      const error = await refusal(api.remoteLogin(options))
      assert.equal(
        error.code,
        code,
        `${JSON.stringify(options).slice(0, 200)}: ${error.message.slice(0, 300)}`,
      )
      assert.match(error.message, field)
      assert.ok(error.message.length < 1000, `bounded: ${error.message.length}`)
      assertNoLeaks(error.message)
      inputs++
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'API remoteLogin: hostile session id, host, mode, directory, message, inline config',
      ok: true,
      inputs,
      userSees: 'SESSION_INVALID / UNKNOWN_HOST / INVALID_ARGUMENT / CONFIG_INVALID naming the field',
    })
  })
})
