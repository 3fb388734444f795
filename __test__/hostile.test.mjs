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
import { recordSummary } from './support/summary.mjs'
import { startWorld } from './support/world.mjs'

const require = createRequire(import.meta.url)
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

// A stand-in for the remote `opencode`, per session: import keeps what it was given, run records its
// arguments, export answers with whatever the test put in back-<session>.json (and waits for it).
const FAKE_OPENCODE = `#!/bin/sh
d=$(dirname "$0")
case $1 in
  import) cp "$2" "$d/imported-$(cat "$(dirname "$2")/session_id").json" ;;
  run) printf '%s\\0' "$@" > "$d/run-argv-$3"; cat > /dev/null ;;
  export)
    i=0
    while [ ! -f "$d/back-$2.json" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
    cat "$d/back-$2.json" ;;
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

describe('hostile back-files', () => {
  const back = (...p) => path.join(fakeDir, ...p)
  let counter = 0
  const newId = (prefix) =>
    `${prefix}_${((BigInt(Date.now()) * 4096n + BigInt(counter++)) & 0xffffffffffffn).toString(16).padStart(12, '0')}` +
    randomBytes(7).toString('hex')

  /**
   * One round trip to "forged" whose back-file is `forge(export the remote received)`. The back-file is
   * written once the remote run has begun (the fake `run` recorded its arguments): the runner notes its
   * start just before, and a message the forgery adds must be newer than that to count as the run's own
   * (src/session `drop_stale`); forged as soon as the import landed, it could predate the start.
   */
  async function roundTrip(sessionID, forge) {
    for (const f of [`back-${sessionID}.json`, `imported-${sessionID}.json`, `run-argv-${sessionID}`]) {
      await rm(back(f), { force: true })
    }
    const turn = world.prompt(sessionID, 'CALL_TOOL:remote_login {"host":"forged","mode":"round-trip"}')
    let sent
    for (const deadline = Date.now() + 60_000; !sent; ) {
      sent = existsSync(back(`run-argv-${sessionID}`))
        ? await readFile(back(`imported-${sessionID}.json`), 'utf8').then((text) => JSON.parse(text))
        : undefined
      assert.ok(sent || Date.now() < deadline, 'the remote run began')
      if (!sent) await new Promise((r) => setTimeout(r, 50))
    }
    // Forged messages are dated after the run's start stamp (the loop above waited for the run itself),
    // as a real run's are; a few ms keep them off the very millisecond of that stamp.
    await new Promise((r) => setTimeout(r, 5))
    await writeRemote(back(`back-${sessionID}.json`), forge(sent))
    await turn
    const messages = await waitForTools(sessionID, 1)
    return { call: toolParts(messages).at(-1), messages, sent }
  }

  /** Nothing but local turns and our own tool call: no remote message, no part the agent would act on. */
  function assertOnlyLocal(messages) {
    for (const m of messages) {
      if (m.info.role === 'assistant') assert.equal(m.info.modelID, 'local-m')
      for (const p of m.parts) {
        assert.ok(['text', 'tool', 'step-start', 'step-finish', 'reasoning'].includes(p.type), p.type)
        if (p.type === 'tool') assert.equal(p.tool, 'remote_login')
      }
    }
  }

  /** Every message of `before` is in `after`, identical. Returns how many were compared. */
  function assertKept(before, after) {
    const byId = new Map(after.map((m) => [m.info.id, m]))
    for (const m of before) assert.deepEqual(byId.get(m.info.id), m, `message ${m.info.id} was changed`)
    return before.length
  }

  const newMessage = (sessionID, text) => {
    const id = newId('msg')
    const info = { id, sessionID, role: 'user', time: { created: Date.now() }, agent: 'build' }
    info.model = { providerID: 'fake', modelID: 'local-m' }
    return { info, parts: [{ id: newId('prt'), sessionID, messageID: id, type: 'text', text }] }
  }

  test('a malformed, truncated, huge or different-id back-file never touches the local session', async () => {
    const bystander = await world.newSession()
    await world.prompt(bystander, 'a session the remote must not reach')
    const bystanderBefore = await serve.client.get(`/session/${bystander}/message`)
    const json = (value) => JSON.stringify(value)
    // Refused whole: nothing of these is read.
    const refused = {
      'not JSON': () => 'this is not a session {',
      empty: () => '',
      truncated: (sent) => json(sent).slice(0, Math.floor(json(sent).length / 2)),
      'huge (32 MiB unterminated)': (sent) =>
        `{"info":{"id":"${sent.info.id}"},"messages":[{"x":"${'A'.repeat(32 << 20)}`,
      '100 KB string for an object': () => json({ info: 'A'.repeat(100 * 1024), messages: [] }),
      'invalid UTF-8': (sent) => {
        const text = Buffer.from(json(sent))
        const at = text.indexOf('hello before') + 5
        return Buffer.concat([text.subarray(0, at), Buffer.from([0xff, 0xfe]), text.subarray(at)])
      },
      'another local session id': (sent) => json(sent).replaceAll(sent.info.id, bystander),
    }
    // Read, with the offending messages dropped and counted.
    const tolerated = {
      'a message of another session': (sent) =>
        json({ ...sent, messages: [...sent.messages, newMessage(bystander, 'INJECTED-FOREIGN')] }),
      'a message missing': (sent) => json({ ...sent, messages: sent.messages.slice(1) }),
      'a message twice': (sent) => json({ ...sent, messages: [...sent.messages, sent.messages.at(-1)] }),
    }
    // Each forgery in its own session, all at once (the waits are mostly idle).
    const results = await Promise.all(
      Object.entries({ ...refused, ...tolerated }).map(async ([name, forge]) => {
        const sessionID = await world.newSession()
        await world.prompt(sessionID, `hello before "${name}"`)
        const before = await serve.client.get(`/session/${sessionID}/message`)
        const { call } = await roundTrip(sessionID, forge)
        const after = await serve.client.get(`/session/${sessionID}/message`)
        return { name, sessionID, call, before, after }
      }),
    )
    let compared = 0
    for (const { name, call, before, after } of results) {
      if (name in refused) {
        assert.equal(call.state.status, 'error', `${name}: ${JSON.stringify(call.state).slice(0, 500)}`)
        assert.match(call.state.error, /^The session data is invalid: /, name)
        assert.ok(call.state.error.length < 400, `${name}: bounded error (${call.state.error.length})`)
        assertNoLeaks(call.state.error)
      } else {
        assert.equal(call.state.status, 'completed', `${name}: ${JSON.stringify(call.state).slice(0, 500)}`)
      }
      compared += assertKept(before, after)
      assert.ok(!JSON.stringify(after).includes('INJECTED'), `${name}: nothing of the back-file arrived`)
      assertOnlyLocal(after)
    }
    const foreign = results.find((r) => r.name === 'a message of another session')
    assert.match(foreign.call.state.output, /dropped 1 message of another session/)
    assert.deepEqual(await serve.client.get(`/session/${bystander}/message`), bystanderBefore)
    compared += bystanderBefore.length

    // A refused back-file is not collected again: the next round trip dispatches anew and comes back.
    const again = await roundTrip(results[0].sessionID, (sent) => JSON.stringify(sent))
    assert.equal(again.call.state.status, 'completed', JSON.stringify(again.call.state))
    assert.equal(again.call.state.metadata.earlier, false)
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'hostile back-files (malformed, empty, truncated, 32 MiB, non-UTF-8, other id, foreign/missing/duplicate messages)',
      ok: true,
      inputs: Object.keys(refused).length + Object.keys(tolerated).length,
      sessionsCompared: results.length + 1,
      messagesCompared: compared,
      lost: 0,
      duplicated: 0,
      userSees: 'SESSION_INVALID or foreign messages dropped; local session unchanged',
    })
  })

  test('a hostile back-file brings back only the text of new assistant messages', async () => {
    const sessionID = await world.newSession()
    await world.prompt(sessionID, 'hello before the rewrite')
    const before = await serve.client.get(`/session/${sessionID}/message`)
    const { call } = await roundTrip(sessionID, (sent) => {
      const [first, ...rest] = sent.messages
      const rewritten = {
        ...first,
        parts: [
          { ...first.parts[0], text: 'INJECTED REWRITE' },
          { ...first.parts[0], id: newId('prt'), text: 'INJECTED APPEND' },
        ],
      }
      const user = newMessage(sent.info.id, 'INJECTED USER TURN')
      user.info.system = 'INJECTED SYSTEM PROMPT'
      user.parts.push({
        ...user.parts[0],
        id: newId('prt'),
        type: 'subtask',
        prompt: 'INJECTED',
        agent: 'build',
      })
      const id = newId('msg')
      const assistant = {
        info: { id, sessionID, role: 'assistant', time: { created: Date.now() }, system: 'INJECTED SYSTEM' },
        parts: [
          {
            id: newId('prt'),
            sessionID,
            messageID: id,
            type: 'text',
            text: 'REMOTE \u001b[31mSAYS\u001b[0m HI',
          },
          {
            id: newId('prt'),
            sessionID,
            messageID: id,
            type: 'file',
            mime: 'text/plain',
            url: 'file:///etc/INJECTED',
          },
          { id: newId('prt'), sessionID, messageID: id, type: 'patch', hash: 'x', files: ['/INJECTED'] },
          { id: newId('prt'), sessionID, messageID: id, type: 'subtask', prompt: 'INJECTED', agent: 'build' },
        ],
      }
      // An id that sorts after every message the local session will ever make.
      const future = newMessage(sent.info.id, 'INJECTED FUTURE')
      future.info.id = `msg_ffffffffffff${'z'.repeat(14)}`
      future.info.role = 'assistant'
      future.parts[0].messageID = future.info.id
      return JSON.stringify({
        ...sent,
        info: { ...sent.info, title: 'INJECTED TITLE' },
        messages: [rewritten, ...rest, user, assistant, future],
      })
    })
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.match(
      call.state.output,
      /dropped 1 user message, 1 message dated outside the run, 1 system field, 1 file part, 1 patch part, 1 subtask part/,
    )
    const after = await serve.client.get(`/session/${sessionID}/message`)
    const compared = assertKept(before, after)
    assert.ok(!JSON.stringify(after).includes('INJECTED'), 'only the text of new assistant messages lands')
    assertOnlyLocal(after)
    const message = after.find((m) => m.info.id === call.messageID)
    const texts = message.parts.filter((p) => p.type === 'text' && p.id > call.id).map((p) => p.text)
    assert.deepEqual(texts, ['── work done on forged (1 message) ──', 'REMOTE SAYS HI'])
    assert.notEqual((await serve.client.get(`/session/${sessionID}`)).title, 'INJECTED TITLE')
    recordSummary({
      kind: 'hostile',
      name: 'back-file with rewritten history, user turn, subtask/file/patch parts, system fields, a future id: only text lands',
      ok: true,
      inputs: 9,
      sessionsCompared: 1,
      messagesCompared: compared,
      lost: 0,
      duplicated: 0,
      userSees: 'round trip completes; the remote text shown; drops counted in the output',
    })
  })
})

describe('the API', () => {
  let api
  before(async () => {
    // The test process plays the plugin: same HOME and config as the local opencode.
    Object.assign(process.env, local.env)
    delete process.env.SSH_AUTH_SOCK
    api = require(world.pkg.api)
  })

  async function outcome(promise) {
    try {
      return { value: await promise }
    } catch (error) {
      return { error }
    }
  }

  /** Refused with `code`, naming `field`, bounded, leaking nothing. */
  async function assertRefused(promise, code, field, what) {
    const { error, value } = await outcome(promise)
    assert.ok(error, `${what}: accepted: ${JSON.stringify(value)?.slice(0, 300)}`)
    assert.equal(error.code, code, `${what}: ${error.message.slice(0, 300)}`)
    assert.match(error.message, field, what)
    assert.ok(error.message.length < 1000, `${what}: bounded (${error.message.length})`)
    assertNoLeaks(error.message)
    return error
  }

  test('remoteLogin refuses hostile session ids, hosts, modes, directories and config values', async () => {
    const base = { sessionId: 'ses_hostile1', host: 'forged', projectDir: local.projectDir }
    let inputs = 0
    for (const name of NAMES) {
      const h = HOSTILE[name]
      const cases = [
        [{ sessionId: h }, 'SESSION_INVALID', /session id/],
        [{ sessionId: `ses_${h}` }, 'SESSION_INVALID', /session id/],
        [{ host: h }, 'UNKNOWN_HOST', /^Unknown host/],
        [{ mode: h }, 'INVALID_ARGUMENT', /mode/],
        // Inline options come from the user's opencode.json: a hostile address is a config error there.
        [{ host: 'x', options: { hosts: { x: h } } }, 'CONFIG_INVALID', /`hosts\.x[.`]/],
        [{ host: 'x', options: { hosts: { x: { host: h } } } }, 'CONFIG_INVALID', /`hosts\.x[.`]/],
        [
          { host: 'x', options: { hosts: { x: { host: 'pi-box', proxyJump: h } } } },
          'CONFIG_INVALID',
          /`hosts\.x[.`]/,
        ],
      ]
      for (const [options, code, field] of cases) {
        await assertRefused(
          api.remoteLogin({ ...base, ...options }),
          code,
          field,
          `${name} ${JSON.stringify(Object.keys(options))}`,
        )
        inputs++
      }
    }
    for (const name of ['nul', 'newline']) {
      await assertRefused(
        api.remoteLogin({
          ...base,
          host: 'x',
          options: { hosts: { x: { host: 'pi-box', directory: HOSTILE[name] } } },
        }),
        'CONFIG_INVALID',
        /`hosts\.x\.directory`/,
        `config directory ${name}`,
      )
      inputs++
    }
    for (const directory of [`d/${HOSTILE.nul}`, `d/${HOSTILE.long}`]) {
      await assertRefused(
        api.remoteLogin({ ...base, directory }),
        'INVALID_ARGUMENT',
        /^Invalid `directory`/,
        'directory',
      )
      inputs++
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'API remoteLogin: hostile session id, host, mode, directory and inline config refused',
      ok: true,
      inputs,
      userSees: 'SESSION_INVALID / UNKNOWN_HOST / INVALID_ARGUMENT / CONFIG_INVALID naming the field',
    })
  })

  test('hostile agent, model and opencode path from the config reach the remote as plain arguments', async () => {
    const sessionID = await world.newSession()
    await world.prompt(sessionID, 'hello')
    const [info, messages] = await Promise.all([
      serve.client.get(`/session/${sessionID}`),
      serve.client.get(`/session/${sessionID}/message`),
    ])
    const exportJson = JSON.stringify({ info, messages })
    const agent = `$(touch ${MARK}); \`touch ${MARK}\``
    const model = `fake/$(touch\${IFS}${MARK})`
    const entry = { host: 'pi-box', opencode: path.join(fakeDir, 'opencode'), agent, model }
    const result = await api.remoteLogin({
      sessionId: sessionID,
      host: 'x',
      exportJson,
      projectDir: local.projectDir,
      options: { hosts: { x: entry } },
    })
    assert.match(result.output, /continues on x/)
    const argvFile = path.join(fakeDir, `run-argv-${sessionID}`)
    for (const deadline = Date.now() + 30_000; !existsSync(argvFile); ) {
      assert.ok(Date.now() < deadline, 'the remote run started')
      await new Promise((r) => setTimeout(r, 50))
    }
    const argv = (await readFile(argvFile, 'utf8')).split('\0').slice(0, -1)
    assert.deepEqual(argv, [
      'run',
      '--session',
      sessionID,
      '--agent',
      agent,
      '--model',
      model,
      '--format',
      'json',
      '--print-logs',
      '--log-level',
      'ERROR',
    ])

    // A configured opencode path that is itself hostile is only ever tested with `[ -x ]`.
    const bad = await assertRefused(
      api.remoteLogin({
        sessionId: sessionID,
        host: 'x',
        exportJson,
        projectDir: local.projectDir,
        options: { hosts: { x: { host: 'pi-box', opencode: `$(touch\${IFS}${MARK})` } } },
      }),
      'REMOTE_NO_OPENCODE',
      /has no `opencode` command/,
      'hostile opencode path',
    )
    assert.ok(bad)
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'config agent/model/opencode with $(), backticks, ${IFS}: plain argv on the remote',
      ok: true,
      inputs: 3,
      userSees: 'dispatched verbatim / REMOTE_NO_OPENCODE',
    })
  })

  test('remote tools take hostile roots and paths as data', async () => {
    const place = { host: 'forged', workspace: 'hostile-ws', root: '~/hostile-root' }
    const refusedAsPaths = new Set(['nul', 'long']) // no file system takes these
    let inputs = 0
    for (const name of NAMES) {
      const h = HOSTILE[name]
      const asData = h.replace(/[\ud800-\udfff]/g, '\ufffd')
      const root = await outcome(
        api.remoteCall({ ...place, workspace: `root-${name}`, root: `~/hostile-root/${h}` }, 'fs/stat', {
          path: '.',
        }),
      )
      const file = await outcome(
        api.remoteCall(place, 'fs/write', { path: `files/${name}-${h}`, content: h, createDirs: true }),
      )
      inputs += 2
      if (refusedAsPaths.has(name)) {
        assert.ok(root.error && file.error, `${name}: refused`)
        assertNoLeaks(`${root.error.message} ${file.error.message}`)
        assert.ok(file.error.message.length < 300, `${name}: bounded`)
        continue
      }
      // A root is sent in the probe's command line, which no quoting carries through every login shell
      // when it holds a control character (csh runs what follows a newline): such roots are refused.
      if (/[\u0000-\u001f\u007f]/.test(h)) {
        assert.equal(root.error?.code, 'REMOTE_BAD_REQUEST', `${name}: ${JSON.stringify(root)}`)
        assertNoLeaks(root.error.message)
      } else {
        assert.equal(root.value?.result?.kind, 'dir', `${name}: ${JSON.stringify(root)}`)
        assert.equal(root.value.result.path, path.join(sshd.userHome, 'hostile-root', asData), name)
      }
      const written = path.join(sshd.userHome, 'hostile-root', 'files', `${name}-${asData}`)
      assert.equal(file.value?.result?.path, written, `${name}: ${JSON.stringify(file)}`)
      assert.equal(await readFile(written, 'utf8'), asData, `${name}: content verbatim`)
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'remote tools (stub): hostile root and file paths are data',
      ok: true,
      inputs,
      userSees: 'created verbatim; NUL / 100 KB names refused by the file system',
    })
  })

  test('hostile workspace ids are refused before anything is created', async () => {
    const place = { host: 'forged', workspace: 'x', root: '~/hostile-root' }
    const stateDir = path.join(local.state, 'opencode-remote')
    for (const name of NAMES) {
      const h = HOSTILE[name]
      const call = await outcome(api.remoteCall({ ...place, workspace: h }, 'fs/stat', { path: '.' }))
      const id = `../../${h}`
      const created = await outcome(
        api.createWorkspace({ id, provider: 'default', host: 'forged', pluginSpec: 'file:///nonexistent' }),
      )
      for (const { error } of [call, created]) {
        assert.ok(error, `${name}: refused`)
        assert.match(
          error.message,
          /workspace id/i,
          `${name}: names the field: ${error.message.slice(0, 300)}`,
        )
        assert.ok(error.message.length < 1000, `${name}: bounded (${error.message.length})`)
        assertNoLeaks(error.message)
      }
      assert.ok(!existsSync(path.join(stateDir, 'workspaces', id)), `${name}: no local workspace dir`)
      const leases = await readFile(path.join(stateDir, 'leases.json'), 'utf8').catch(() => '{}')
      assert.deepEqual(Object.keys(JSON.parse(leases)), [], `${name}: no lease left`)
    }
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'remote tools / createWorkspace: hostile workspace ids refused, nothing created locally',
      ok: true,
      inputs: NAMES.length * 2,
      userSees: 'refused naming the workspace id; no lease, no local dir',
    })
  })
})

describe('the CLI', () => {
  let home, env, hostsFile, original

  /** Run `opencode-remote` with `args`; `raw` (bash words) lets a test pass bytes that are not UTF-8. */
  function cli(args, { raw } = {}) {
    const [file, argv] = raw
      ? ['bash', ['-c', `exec "$0" "$1" ${raw}`, process.execPath, world.pkg.bin]]
      : [process.execPath, [world.pkg.bin, ...args]]
    return new Promise((resolve) => {
      execFile(file, argv, { env, maxBuffer: 64 << 20 }, (error, stdout, stderr) =>
        resolve({ code: error ? error.code : 0, stdout, stderr }),
      )
    })
  }

  async function configFiles() {
    return (await readdir(path.dirname(hostsFile))).filter((f) => f.startsWith('hosts.jsonc')).sort()
  }

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'ocr-hostile-cli-'))
    await sshd.writeClientSshFiles(home, { alias: 'box' })
    await mkdir(path.join(home, 'config', 'opencode'), { recursive: true })
    hostsFile = path.join(home, 'config', 'opencode', 'hosts.jsonc')
    original = '// my hosts\n{\n  "hosts": {\n    "keep": "box", // a comment to keep\n  },\n}\n'
    await writeFile(hostsFile, original)
    env = {
      PATH: opencodePath(),
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_STATE_HOME: path.join(home, 'state'),
      ...(process.env.NAPI_RS_NATIVE_LIBRARY_PATH
        ? { NAPI_RS_NATIVE_LIBRARY_PATH: process.env.NAPI_RS_NATIVE_LIBRARY_PATH }
        : {}),
    }
  })

  after(async () => {
    await rm(home, { recursive: true, force: true })
  })

  test('hosts add, doctor and setup refuse hostile names, addresses and fields; the file stays intact', async () => {
    const passable = NAMES.filter((n) => n !== 'nul') // argv cannot carry a NUL at all
    const refusals = []
    const refuse = (what, field, args, opts) => refusals.push({ what, field, args, opts })
    for (const name of passable) {
      const h = HOSTILE[name]
      refuse(`alias ${name}`, /hosts\./, ['hosts', 'add', '--', h, 'box'])
      // A 100 KB or non-UTF-8 address is odd but inert data (see the next test).
      if (name !== 'long' && name !== 'nonUtf8') {
        refuse(`address ${name}`, /hosts\.ok/, ['hosts', 'add', 'ok', '--', h])
      }
      // doctor and setup look the name up like every command: a few representatives suffice.
      if (['subst', 'option', 'long'].includes(name)) {
        refuse(`doctor ${name}`, /unknown host|Unknown host/, ['doctor', '--', h])
        refuse(`setup ${name}`, /UNKNOWN_HOST/, ['setup', '--', h])
      }
    }
    refuse('alias not UTF-8', /hosts\./, [], { raw: `hosts add "$(printf 'bad-\\377\\376-name')" box` })
    refuse('proxy jump option', /proxyJump/, ['hosts', 'add', 'ok', 'box', `--proxy-jump=${HOSTILE.option}`])
    refuse('user with spaces', /user/, ['hosts', 'add', 'ok', 'box', `--user=${HOSTILE.subst}`])
    refuse('agent option', /agent/, ['hosts', 'add', 'ok', 'box', '--agent=--help'])
    refuse('model with spaces', /model/, ['hosts', 'add', 'ok', 'box', `--model=fake/${HOSTILE.subst}`])
    refuse('directory newline', /directory/, ['hosts', 'add', 'ok', 'box', `--directory=${HOSTILE.newline}`])
    refuse('identity newline', /identityFile/, [
      'hosts',
      'add',
      'ok',
      'box',
      `--identity-file=${HOSTILE.newline}`,
    ])

    const results = []
    for (let i = 0; i < refusals.length; i += 6) {
      const batch = refusals.slice(i, i + 6)
      results.push(...(await Promise.all(batch.map((r) => cli(r.args, r.opts)))))
    }
    for (const [i, { what, field }] of refusals.entries()) {
      const { code, stdout, stderr } = results[i]
      assert.equal(code, 1, `${what}: exit ${code}\n${stderr.slice(0, 500)}`)
      assert.match(`${stdout}${stderr}`, field, `${what}: names the field`)
    }
    // Without `--`, an option-looking argument is a usage error, never a value.
    const usage = await cli(['hosts', 'add', HOSTILE.option, 'box'])
    assert.equal(usage.code, 2, usage.stderr)
    assert.equal(await readFile(hostsFile, 'utf8'), original, 'the file is byte for byte the same')
    assert.deepEqual(await configFiles(), ['hosts.jsonc'], 'no backup, no temp file')
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'CLI hosts add / doctor / setup: hostile alias, address and fields refused; file untouched',
      ok: true,
      inputs: refusals.length + 1,
      userSees: 'exit 1 naming the field (exit 2 for an unquoted option); NUL cannot be passed in argv',
    })
  })

  test('hostile values that are valid data are stored verbatim, with a backup, and run nothing', async () => {
    const directory = `${HOSTILE.quotes} ${HOSTILE.subst} ${HOSTILE.backticks} ${HOSTILE.semicolon}`
    const model = `fake/$(touch\${IFS}${MARK})`
    const added = await cli(['hosts', 'add', 'weird', 'box', `--directory=${directory}`, `--model=${model}`])
    assert.equal(added.code, 0, added.stderr)
    const raw = await cli([], { raw: `hosts add odd box --directory="$(printf 'd-\\377-x')"` })
    assert.equal(raw.code, 0, raw.stderr)
    for (const name of ['long', 'nonUtf8']) {
      const address = await cli(['hosts', 'add', `addr-${name}`, '--', HOSTILE[name]])
      assert.equal(address.code, 0, address.stderr)
    }
    const text = await readFile(hostsFile, 'utf8')
    assert.ok(text.startsWith('// my hosts\n'), 'comments kept')
    assert.match(text, /"keep": "box", \/\/ a comment to keep/)
    const files = await configFiles()
    assert.equal(files.filter((f) => f.includes('.bak-')).length, 4, `a backup per edit: ${files}`)
    assert.ok(!files.some((f) => f.includes('.tmp')), 'no temp file left')

    const listed = await cli(['hosts', 'list', '--json'])
    assert.equal(listed.code, 0, listed.stderr)
    const byName = Object.fromEntries(JSON.parse(listed.stdout).map((h) => [h.name, h]))
    assert.equal(byName.weird.directory, directory)
    assert.equal(byName.weird.model, model)
    assert.equal(byName.odd.directory, 'd-\ufffd-x', 'bytes that are not UTF-8 arrive as U+FFFD')
    assert.equal(byName['addr-long'].address, HOSTILE.long)
    assert.equal(byName['addr-nonUtf8'].address, 'bad-\ufffd-\ufffd-utf8')

    // doctor walks the whole chain for it (ssh, the remote opencode): the values stay data.
    const doctor = await cli(['doctor', 'weird', '--json'])
    const checks = JSON.parse(doctor.stdout)[0].checks
    assert.equal(checks.find((c) => c.name === 'auth')?.status, 'ok', JSON.stringify(checks))
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'CLI: $(), backticks, quotes, ; and non-UTF-8 in directory/model stored verbatim, doctor runs nothing',
      ok: true,
      inputs: 5,
      userSees: 'added with backup; doctor checks pass',
    })
  })

  test('parallel edits of the same file lose nothing', async () => {
    const names = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']
    const results = await Promise.all(names.map((n) => cli(['hosts', 'add', n, 'box'])))
    for (const r of results) assert.equal(r.code, 0, r.stderr)
    const listed = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout).map((h) => h.name)
    for (const n of names) assert.ok(listed.includes(n), `${n} was kept: ${listed}`)
    assert.ok(!(await configFiles()).some((f) => f.includes('.tmp')), 'no temp file left')
    recordSummary({
      kind: 'hostile',
      name: 'CLI: 6 parallel hosts add on one file, none lost',
      ok: true,
      inputs: names.length,
      lost: 0,
      userSees: 'all hosts added',
    })
  })

  test('a hand-written hostile entry is refused alone everywhere it is read; edits keep it verbatim', async () => {
    const before = await readFile(hostsFile, 'utf8')
    const evil = before.replace('"hosts": {', `"hosts": {\n    "evil": ${JSON.stringify(HOSTILE.option)},`)
    await writeFile(hostsFile, evil)
    const list = await cli(['hosts', 'list'])
    const doctor = await cli(['doctor', 'evil'])
    // The entry is refused on its own: list shows it as refused beside the hosts that still work, and
    // doctor fails it naming the entry.
    assert.equal(list.code, 0, `list: ${list.stdout}${list.stderr}`)
    assert.match(list.stdout, /^evil\s+refused: .*hosts\.evil/m, 'list names the entry as refused')
    assert.equal(doctor.code, 1, `doctor: ${doctor.stdout}${doctor.stderr}`)
    assert.match(`${doctor.stdout}${doctor.stderr}`, /hosts\.evil/, 'doctor names the entry')
    // Editing another host works, and neither repairs nor drops the refused entry.
    const add = await cli(['hosts', 'add', 'another', 'box'])
    assert.equal(add.code, 0, `add: ${add.stdout}${add.stderr}`)
    const after = await readFile(hostsFile, 'utf8')
    assert.ok(after.includes(`"evil": ${JSON.stringify(HOSTILE.option)}`), after)
    const listed = JSON.parse((await cli(['hosts', 'list', '--json'])).stdout)
    assert.ok(listed.find((h) => h.name === 'evil')?.refused, JSON.stringify(listed))
    assert.ok(
      listed.find((h) => h.name === 'another' && !h.refused),
      JSON.stringify(listed),
    )
    await writeFile(hostsFile, before)
    assertNothingRan()
    recordSummary({
      kind: 'hostile',
      name: 'CLI: hand-written -oProxyCommand address refused alone by list, doctor; kept verbatim by add',
      ok: true,
      inputs: 3,
      userSees: 'evil refused: CONFIG_INVALID at hosts.evil; the other hosts work',
    })
  })
})
