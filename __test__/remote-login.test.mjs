// remote_login end to end: the packed plugin inside the real `opencode serve`, a real sshd on loopback
// whose remote user (its own Unix account and HOME) runs the real `opencode`, and a fake LLM both sides
// talk to. The local model asks for remote_login; we check what arrives where.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { messageText } from './harness/opencode.mjs'
import { startWorld } from './support/world.mjs'

const HOST = 'pi'

let world, llm, sshd, local, serve

const newSession = () => world.newSession()
const prompt = (sessionID, text) => world.prompt(sessionID, text)

function callRemoteLogin(args) {
  return `CALL_TOOL:remote_login ${JSON.stringify(args)}`
}

function toolParts(messages, tool) {
  return messages.flatMap((m) => m.parts.filter((p) => p.type === 'tool' && p.tool === tool))
}

/** The text parts written into the assistant message holding the `index`-th remote_login call. */
function returnedTexts(messages, index = 0) {
  const call = toolParts(messages, 'remote_login')[index]
  const message = messages.find((m) => m.info.id === call.messageID)
  return message.parts.filter((p) => p.type === 'text' && p.id > call.id).map((p) => p.text)
}

/**
 * What came back stays data: no message of the remote's, no part type the local agent would act on, no
 * tool call of the remote's; every assistant message is the local model's.
 */
function assertOnlyLocalMessages(messages) {
  for (const m of messages) {
    assert.ok(!messageText(m).startsWith('[Environment]'), 'the remote prompt stayed remote')
    if (m.info.role === 'assistant') assert.equal(m.info.modelID, 'local-m')
    for (const p of m.parts) {
      assert.ok(['text', 'tool', 'step-start', 'step-finish', 'reasoning'].includes(p.type), p.type)
      if (p.type === 'tool') assert.equal(p.tool, 'remote_login')
    }
  }
}

/** Everything the model could see of our tool: its description and every tool result and error. */
function textsShownToModel(messages) {
  const results = toolParts(messages, 'remote_login').map(
    (p) => `${p.state?.output ?? ''} ${p.state?.error ?? ''}`,
  )
  const descriptions = llm.requests.flatMap((r) =>
    (r.tools ?? []).filter((t) => t.function?.name === 'remote_login').map((t) => t.function.description),
  )
  return [...results, ...descriptions]
}

function assertNoSecrets(texts) {
  const secrets = ['127.0.0.1', String(sshd.port), sshd.user, sshd.clientKey, local.home, 'id_ed25519']
  for (const text of texts) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `"${secret}" leaked into: ${text}`)
  }
}

before(async () => {
  world = await startWorld({
    hosts: {
      [HOST]: { host: 'pi-box', model: 'fake/remote-m', agent: 'build' },
      // Same server; a test below points it at a known_hosts holding another key.
      mitm: { host: 'pi-box' },
      // Same server with a round-trip timeout shorter than the remote task.
      slow: { host: 'pi-box', model: 'fake/remote-m', timeoutSecs: 3 },
      // Same server, but the remote opencode is missing / its model does not exist.
      bare: { host: 'pi-box', opencode: '/nonexistent/bin/opencode' },
      broken: { host: 'pi-box', model: 'fake/no-such-model' },
      // No model or agent: the remote's own defaults (its opencode.json says fake/remote-m).
      plain: 'pi-box',
    },
  })
  ;({ llm, sshd, local, serve } = world)
})

after(async () => {
  await world?.stop()
})

describe('remote_login', () => {
  test('the tool is listed with host names only', async () => {
    const sessionID = await newSession()
    await prompt(sessionID, 'hello')
    const request = llm.requests.findLast((r) =>
      (r.tools ?? []).some((t) => t.function?.name === 'remote_login'),
    )
    assert.ok(request, 'remote_login was offered to the model')
    const tool = request.tools.find((t) => t.function.name === 'remote_login').function
    assert.match(tool.description, /Available hosts: bare, broken, mitm, pi, plain, slow/)
    assert.deepEqual(tool.parameters.required, ['host'], 'mode, directory and message are optional')
    assertNoSecrets([tool.description])
  })

  test('one-way: the session is imported and continued on the remote', async () => {
    const sessionID = await newSession()
    const marker = `one-way-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"echo ${marker} > proof-one-way.txt"}`
    await prompt(sessionID, callRemoteLogin({ host: HOST, message }))

    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.match(call.state.output, /continues on pi/)
    // The hand-over ends the local turn: the local model never sees the tool's result.
    const localAfter = llm.requests.filter(
      (r) => r.model !== 'remote-m' && JSON.stringify(r.messages).includes('continues on pi'),
    )
    assert.equal(localAfter.length, 0, 'no local LLM step after the hand-over')
    const info = await serve.client.get(`/session/${sessionID}`)
    assert.match(info.title, /^\[on pi\] /, 'the session list says where it went')
    const mark = returnedTexts(messages)
    assert.deepEqual(mark.slice(0, 1), ['── handed over to pi ──'])
    assert.match(mark[1], /^This session now continues on pi; this copy stops here\. To follow it: /)

    // The remote opencode ran the continuation with the host's model and executed the tool on the remote.
    const remoteTurn = await llm.waitFor(
      (r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker),
      60_000,
    )
    assert.ok(remoteTurn)
    const proof = path.join(sshd.userHome, 'proof-one-way.txt')
    await waitForFile(proof, 60_000)
    assert.equal((await readFile(proof, 'utf8')).trim(), marker)
    assert.ok(!existsSync(path.join(local.home, 'proof-one-way.txt')))
    assertNoSecrets(textsShownToModel(messages))
  })

  test('round-trip: the remote work comes back as text in the calling message, and the local agent continues', async () => {
    const sessionID = await newSession()
    const marker = `round-trip-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"echo ${marker} > proof-round-trip.txt && cat proof-round-trip.txt"}`
    await prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip', message }))

    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.match(call.state.output, /round trip to pi is finished/)
    assert.doesNotMatch(call.state.output, /dropped/)

    // The remote model saw our in-flight call as finished, not as an interrupted or pending tool.
    const remoteTurn = llm.requests.find(
      (r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker),
    )
    const remoteView = remoteTurn.messages.find((m) => m.role === 'tool')
    assert.match(JSON.stringify(remoteView.content), /Logged in to pi/)

    // The remote's work is text in the assistant message that made the call: a header, its bash call
    // with the output, its answer. Nothing else of the remote's arrived.
    const texts = returnedTexts(messages)
    assert.match(texts[0], /^── work done on pi \(2 messages\) ──$/)
    const bash = texts.filter((t) => t.startsWith('**pi** · `bash` · '))
    assert.equal(bash.length, 1, texts.join('\n'))
    assert.ok(bash[0].includes(marker))
    assert.ok(texts.some((t) => t.startsWith('FAKE_TOOL_RESULT_SEEN')))
    assertOnlyLocalMessages(messages)
    assert.equal((await readFile(path.join(sshd.userHome, 'proof-round-trip.txt'), 'utf8')).trim(), marker)
    assert.ok(!existsSync(path.join(local.projectDir, 'proof-round-trip.txt')))

    // The local model continued in the same turn, and saw the remote's tool output in its history.
    const localTurn = llm.requests.findLast(
      (r) => r.model === 'local-m' && JSON.stringify(r.messages).includes(`round trip to pi is finished`),
    )
    assert.ok(JSON.stringify(localTurn.messages).includes(marker))
    const last = messages.at(-1)
    assert.equal(last.info.role, 'assistant')
    assert.ok(last.info.time?.completed)
    // The collected job is gone from the host: it held the whole conversation.
    assert.ok(!existsSync(path.join(sshd.userHome, '.opencode-remote', 'jobs', call.state.metadata.jobId)))
    assertNoSecrets(textsShownToModel(messages))
  })

  test('a host without a model runs with the remote default model, not the local one', async () => {
    const sessionID = await newSession()
    const marker = `plain-${Date.now()}`
    await prompt(
      sessionID,
      callRemoteLogin({
        host: 'plain',
        mode: 'round-trip',
        message: `CALL_TOOL:bash {"command":"echo ${marker}"}`,
      }),
    )
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    // The remote run's requests carry its prompt; the local model never sees it.
    const remote = llm.requests.filter((r) => {
      const text = JSON.stringify(r.messages)
      return text.includes(marker) && text.includes('[Environment]')
    })
    assert.ok(remote.length >= 2, 'the remote run asked the model twice')
    assert.deepEqual([...new Set(remote.map((r) => r.model))], ['remote-m'])
    assert.ok(returnedTexts(messages).some((t) => t.includes(marker)))
  })

  test('hostile directory and message arrive verbatim and run nothing', async () => {
    const sessionID = await newSession()
    const markerFile = path.join(os.tmpdir(), `ocr-injected-${process.pid}-${Date.now()}`)
    const hostile = `it's "q" $(touch ${markerFile}) \`touch ${markerFile}\`; touch ${markerFile}\nnext line ü 中文`
    const directory = `work/${hostile}`
    await prompt(sessionID, callRemoteLogin({ host: HOST, directory, message: hostile }))

    const messages = await serve.client.get(`/session/${sessionID}/message`)
    assert.equal(toolParts(messages, 'remote_login')[0].state.status, 'completed')
    const turn = await llm.waitFor(
      (r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes('next line ü 中文'),
      60_000,
    )
    const userText = turn.messages
      .filter((m) => m.role === 'user')
      .map((m) => JSON.stringify(m.content))
      .join('\n')
    assert.ok(userText.includes(JSON.stringify(hostile).slice(1, -1)), 'the message arrived verbatim')
    assert.ok(existsSync(path.join(sshd.userHome, directory)), 'the directory was created verbatim')
    assert.ok(!existsSync(markerFile), 'nothing was executed')
  })

  test('an unknown host is refused with the list of names only', async () => {
    const sessionID = await newSession()
    await prompt(sessionID, callRemoteLogin({ host: 'nope' }))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'error')
    assert.match(
      call.state.error,
      /Unknown host 'nope'\. Configured hosts: bare, broken, mitm, pi, plain, slow\./,
    )
    assertNoSecrets(textsShownToModel(messages))
  })

  test('a changed host key is refused', async () => {
    // Point "mitm" at a known_hosts whose entry for this server holds another key.
    const knownHosts = path.join(local.home, '.ssh', 'known_hosts_mitm')
    const otherKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0mK4g1cD2iQ3Uq2V6m5Wm4o9f8mJ7c0yH2Q8lq1f3'
    await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${otherKey}\n`)
    const sshConfig = path.join(local.home, '.ssh', 'config')
    const original = await readFile(sshConfig, 'utf8')
    await writeFile(
      sshConfig,
      `Host pi-box-mitm\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.user}\n  UserKnownHostsFile ${knownHosts}\n\n${original}`,
    )
    const hosts = await readFile(world.hostsFile, 'utf8')
    await writeFile(world.hostsFile, hosts.replace(/("mitm": \{\s*"host": )"pi-box"/, '$1"pi-box-mitm"'))
    assert.match(await readFile(world.hostsFile, 'utf8'), /pi-box-mitm/)

    const sessionID = await newSession()
    await prompt(sessionID, callRemoteLogin({ host: 'mitm' }))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'error')
    assert.match(call.state.error, /host key of 'mitm' has CHANGED/)
    assert.match(call.state.error, /known_hosts_mitm line 1/)
    assertNoSecrets(textsShownToModel(messages))
  })

  test('a dropped connection during the round-trip wait loses nothing', async () => {
    const sessionID = await newSession()
    const marker = `dropped-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"sleep 4; echo ${marker}"}`
    const done = prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip', message }))
    // Wait until the remote run is under way (its LLM request arrived), then cut every SSH connection.
    await llm.waitFor((r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker), 60_000)
    await sshd.dropSessions()
    await done

    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.ok(call.state.metadata.reconnects >= 1, `reconnected: ${JSON.stringify(call.state.metadata)}`)
    const withMarker = returnedTexts(messages).filter((t) => t.includes(`\n${marker}`))
    assert.equal(withMarker.length, 1, 'the remote work arrived exactly once')
    assertOnlyLocalMessages(messages)
  })
})

describe('remote_login round trips that outlive the call', () => {
  test('a timed-out round trip is collected by the next call, which also dispatches its own message', async () => {
    const sessionID = await newSession()
    const marker = `late-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"sleep 6; echo ${marker}"}`
    await prompt(sessionID, callRemoteLogin({ host: 'slow', mode: 'round-trip', message }))
    let messages = await serve.client.get(`/session/${sessionID}/message`)
    const [first] = toolParts(messages, 'remote_login')
    assert.equal(first.state.status, 'error', JSON.stringify(first.state))
    assert.match(
      first.state.error,
      /Timed out after 3 s .* call remote_login with the same host and mode=round-trip/,
    )
    assertNoSecrets(textsShownToModel(messages))

    // The next round trip (with time enough for its own run) first collects the job that kept running,
    // then sends its own message.
    const hosts = await readFile(world.hostsFile, 'utf8')
    await writeFile(world.hostsFile, hosts.replace('"timeoutSecs": 3', '"timeoutSecs": 120'))
    const second = `second-${Date.now()}`
    await prompt(
      sessionID,
      callRemoteLogin({
        host: 'slow',
        mode: 'round-trip',
        message: `CALL_TOOL:bash {"command":"echo ${second}"}`,
      }),
    )
    messages = await serve.client.get(`/session/${sessionID}/message`)
    const call = toolParts(messages, 'remote_login')[1]
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.equal(call.state.metadata.earlier, true)
    assert.match(call.state.output, /earlier round trip to slow \(started \d\d:\d\d\) was still pending/)
    const texts = returnedTexts(messages, 1)
    assert.match(texts[0], /^── earlier round trip on slow \(started \d\d:\d\d\) ──$/)
    const header = texts.findIndex((t) => t.startsWith('── work done on slow'))
    assert.ok(header > 0, texts.join('\n'))
    assert.equal(texts.slice(0, header).filter((t) => t.includes(`\n${marker}`)).length, 1)
    assert.equal(texts.slice(header).filter((t) => t.includes(`\n${second}`)).length, 1)
    assert.equal(
      llm.requests.filter(
        (r) =>
          r.model === 'remote-m' &&
          r.messages.at(-1)?.role === 'user' &&
          JSON.stringify(r.messages.at(-1)).includes(marker),
      ).length,
      1,
      'the first remote task ran once',
    )
    assertOnlyLocalMessages(messages)
  })
})

describe('remote_login failures the model can act on', () => {
  test('a remote without opencode says how to install it', async () => {
    const sessionID = await newSession()
    await prompt(sessionID, callRemoteLogin({ host: 'bare' }))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'error')
    assert.match(
      call.state.error,
      /Host 'bare' has no `opencode` command\. Install it there \(`npm i -g opencode-ai`/,
    )
    assertNoSecrets(textsShownToModel(messages))
  })

  test('a configured model the host lacks is refused before anything runs, naming host, model and fix', async () => {
    const sessionID = await newSession()
    await prompt(sessionID, callRemoteLogin({ host: 'broken', mode: 'round-trip' }))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'error')
    assert.match(call.state.error, /Host 'broken' has no model 'fake\/no-such-model'/)
    assert.match(
      call.state.error,
      /Edit `model` for 'broken' in hosts\.json .* or configure that provider on the host/,
    )
    assert.ok(!llm.requests.some((r) => r.model === 'no-such-model'), 'no remote run started')
    assertNoSecrets(textsShownToModel(messages))
  })

  test('aborting the turn stops the remote run, and the next round trip sends its own message', async () => {
    const sessionID = await newSession()
    const marker = `aborted-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"sleep 30; echo ${marker}"}`
    const turn = prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip', message }))
    await llm.waitFor((r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker), 60_000)
    const pid = await remotePid(marker)
    assert.ok(existsSync(`/proc/${pid}`), 'the remote run is running')
    const abortedAt = Date.now()
    await serve.client.post(`/session/${sessionID}/abort`, {})
    await turn.catch(() => {})
    assert.ok(Date.now() - abortedAt < 15_000, 'the turn ended promptly after the abort')
    let messages = await serve.client.get(`/session/${sessionID}/message`)
    assert.notEqual(toolParts(messages, 'remote_login')[0].state.status, 'completed')
    for (const deadline = Date.now() + 10_000; existsSync(`/proc/${pid}`); ) {
      assert.ok(Date.now() < deadline, 'the remote run was stopped')
      await new Promise((r) => setTimeout(r, 100))
    }

    const next = `after-abort-${Date.now()}`
    await prompt(
      sessionID,
      callRemoteLogin({
        host: HOST,
        mode: 'round-trip',
        message: `CALL_TOOL:bash {"command":"echo ${next}"}`,
      }),
    )
    messages = await serve.client.get(`/session/${sessionID}/message`)
    const call = toolParts(messages, 'remote_login')[1]
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.equal(call.state.metadata.earlier, false)
    const texts = returnedTexts(messages, 1)
    assert.ok(
      texts.some((t) => t.includes(`\n${next}`)),
      texts.join('\n'),
    )
    assert.ok(!texts.some((t) => t.includes(`\n${marker}`)), 'the stopped run never finished its task')
  })

  test("a remote database locked past OpenCode's 5 s wait: the import is tried again and the round trip completes", async () => {
    // Another writer (here: a transaction the remote user holds for 12 s) keeps OpenCode's database busy
    // longer than OpenCode waits for it, as a stopped run still shutting down or busy runs can.
    const db = path.join(sshd.userHome, '.local', 'share', 'opencode', 'opencode.db')
    if (!existsSync(db)) {
      // Run alone, this is the host's first round trip: let OpenCode create its database first.
      await prompt(await newSession(), callRemoteLogin({ host: HOST, mode: 'round-trip', message: 'hello' }))
    }
    assert.ok(existsSync(db), 'the remote has used OpenCode before')
    const script =
      'import sqlite3,sys,time\n' +
      'c=sqlite3.connect(sys.argv[1],isolation_level=None)\n' +
      'c.execute("BEGIN IMMEDIATE")\nprint("locked",flush=True)\ntime.sleep(12)\nc.execute("COMMIT")\n'
    const locker = spawn('runuser', ['-u', sshd.user, '--', '/usr/bin/python3', '-c', script, db])
    await new Promise((resolve, reject) => {
      locker.stdout.once('data', resolve)
      locker.once('exit', (code) => reject(new Error(`the locker exited with ${code}`)))
    })
    const sessionID = await newSession()
    const marker = `locked-${Date.now()}`
    await prompt(
      sessionID,
      callRemoteLogin({
        host: HOST,
        mode: 'round-trip',
        message: `CALL_TOOL:bash {"command":"echo ${marker}"}`,
      }),
    )
    await new Promise((resolve) => (locker.exitCode === null ? locker.once('exit', resolve) : resolve()))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.ok(returnedTexts(messages).some((t) => t.includes(`\n${marker}`)))
  })

  test("a cloned project's hosts.json cannot take over pi or learn a host key", async () => {
    // The project redefines the user's `pi` (somewhere unreachable) and adds `proj`, a host of its own on
    // the same server, which ~/.ssh/config would let learn its key (accept-new) into an empty known_hosts.
    const projectHosts = path.join(local.projectDir, 'hosts.json')
    const knownHosts = path.join(local.home, '.ssh', 'known_hosts_proj')
    await writeFile(knownHosts, '')
    const sshConfig = path.join(local.home, '.ssh', 'config')
    const original = await readFile(sshConfig, 'utf8')
    await writeFile(
      sshConfig,
      `Host pi-box-proj\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User ${sshd.user}\n  UserKnownHostsFile ${knownHosts}\n  StrictHostKeyChecking accept-new\n\n${original}`,
    )
    await writeFile(
      projectHosts,
      JSON.stringify({ hosts: { pi: { host: '127.0.0.1', port: 1 }, proj: 'pi-box-proj' } }),
    )
    try {
      const sessionID = await newSession()
      await prompt(sessionID, callRemoteLogin({ host: HOST, message: 'hello from the trust test' }))
      let messages = await serve.client.get(`/session/${sessionID}/message`)
      const [call] = toolParts(messages, 'remote_login')
      assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
      assert.match(call.state.output, /continues on pi/)

      const other = await newSession()
      await prompt(other, callRemoteLogin({ host: 'proj' }))
      messages = await serve.client.get(`/session/${other}/message`)
      const [refused] = toolParts(messages, 'remote_login')
      assert.equal(refused.state.status, 'error')
      assert.match(refused.state.error, /host key of 'proj' is not known/)
      assert.match(refused.state.error, /define the host in your own hosts file/)
      assert.equal(await readFile(knownHosts, 'utf8'), '', 'no key was learned')
      assertNoSecrets(textsShownToModel(messages))
    } finally {
      await rm(projectHosts, { force: true })
      await writeFile(sshConfig, original)
    }
  })
})

describe('remoteLogin from the API', () => {
  test('loginProgress reports the phase and the remote step while a round trip waits', async () => {
    Object.assign(process.env, local.env)
    delete process.env.SSH_AUTH_SOCK
    const api = createRequire(import.meta.url)('../api.js')
    const sessionID = await newSession()
    await prompt(sessionID, 'hello')
    const [info, messages] = await Promise.all([
      serve.client.get(`/session/${sessionID}`),
      serve.client.get(`/session/${sessionID}/message`),
    ])
    const marker = `progress-${Date.now()}`
    const requestId = `req-${marker}`
    const call = api.remoteLogin({
      sessionId: sessionID,
      host: HOST,
      mode: 'round-trip',
      message: `CALL_TOOL:bash {"command":"sleep 4; echo ${marker}"}`,
      requestId,
      exportJson: JSON.stringify({ info, messages }),
      projectDir: local.projectDir,
    })
    const seen = []
    let done = false
    call.finally(() => (done = true)).catch(() => {})
    while (!done) {
      const progress = api.loginProgress(requestId)
      if (progress) seen.push(progress)
      await new Promise((r) => setTimeout(r, 100))
    }
    const result = await call
    assert.equal(api.loginProgress(requestId), null, 'nothing is reported once the call is over')
    assert.deepEqual(result.parts, [], 'without a messageId the work comes back in the output')
    assert.ok(result.output.includes(`\n${marker}`), result.output)
    assert.ok(seen.every((p) => p.host === HOST))
    const phases = [...new Set(seen.map((p) => p.phase))]
    assert.ok(phases.includes('waiting'), phases.join())
    const steps = seen.filter((p) => p.phase === 'waiting' && p.remoteStep).map((p) => p.remoteStep)
    assert.ok(
      steps.some((s) => s === 'thinking' || s.startsWith('bash: ')),
      `remote steps seen: ${[...new Set(steps)].join(' | ')}`,
    )
    assert.ok(seen.at(-1).elapsedMs > seen[0].elapsedMs)
  })
})

/** The pid of the remote run whose message holds `marker` (its job dir records it). */
async function remotePid(marker) {
  const jobs = path.join(sshd.userHome, '.opencode-remote', 'jobs')
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    for (const id of await readdir(jobs).catch(() => [])) {
      const message = await readFile(path.join(jobs, id, 'message.txt'), 'utf8').catch(() => '')
      const pid = await readFile(path.join(jobs, id, 'pid'), 'utf8').catch(() => '')
      if (message.includes(marker) && pid.trim()) return Number(pid.trim())
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('no remote job with a pid')
}

async function waitForFile(file, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
