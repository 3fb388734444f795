// remote_login end to end: the packed plugin inside the real `opencode serve`, a real sshd on loopback
// whose remote user (its own Unix account and HOME) runs the real `opencode`, and a fake LLM both sides
// talk to. The local model asks for remote_login; we check what arrives where.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { messageText, waitForMessages } from './harness/opencode.mjs'
import { LOCAL_MODEL, startWorld } from './support/world.mjs'

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
    assert.match(tool.description, /Available hosts: bare, broken, mitm, pi, slow/)
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

  test('round-trip: the remote work comes back and the local agent continues with its own model', async () => {
    const sessionID = await newSession()
    const marker = `round-trip-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"echo ${marker} > proof-round-trip.txt && cat proof-round-trip.txt"}`
    await prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip', message }))

    const messages = await waitForMessages(
      serve,
      sessionID,
      (ms) => {
        const wake = ms.findIndex((m) => m.info.role === 'user' && messageText(m).includes('[Back from pi]'))
        return (
          wake >= 0 && ms.slice(wake + 1).some((m) => m.info.role === 'assistant' && m.info.time?.completed)
        )
      },
      120_000,
    )
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.match(call.state.output, /came back from pi/)

    // The remote model saw our in-flight call as finished, not as an interrupted or pending tool.
    const remoteTurn = llm.requests.find(
      (r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker),
    )
    const remoteView = remoteTurn.messages.find((m) => m.role === 'tool')
    assert.match(JSON.stringify(remoteView.content), /Logged in to pi/)

    // The remote's turn is in the local history: its user prompt, its model, its bash call on the remote.
    const remoteUser = messages.filter(
      (m) => m.info.role === 'user' && messageText(m).includes('[Environment]'),
    )
    assert.equal(remoteUser.length, 1)
    const remoteBash = toolParts(messages, 'bash')
    assert.equal(remoteBash.length, 1)
    assert.match(remoteBash[0].state.output, new RegExp(marker))
    assert.ok(messages.some((m) => m.info.role === 'assistant' && m.info.modelID === 'remote-m'))
    assert.equal((await readFile(path.join(sshd.userHome, 'proof-round-trip.txt'), 'utf8')).trim(), marker)
    assert.ok(!existsSync(path.join(local.projectDir, 'proof-round-trip.txt')))

    // The wake-up turn restored the original agent and model, and a local assistant answered it.
    const wakeIndex = messages.findIndex(
      (m) => m.info.role === 'user' && messageText(m).includes('[Back from pi]'),
    )
    const wake = messages[wakeIndex]
    assert.equal(wake.info.agent, 'build')
    assert.deepEqual(wake.info.model, LOCAL_MODEL)
    const reply = messages.slice(wakeIndex + 1).find((m) => m.info.role === 'assistant')
    assert.equal(reply.info.modelID, 'local-m')
    assert.equal(reply.info.providerID, 'fake')
    // The local model saw the remote's tool result in its history.
    const localTurn = llm.requests.findLast(
      (r) => r.model === 'local-m' && JSON.stringify(r.messages).includes('[Back from pi]'),
    )
    assert.ok(JSON.stringify(localTurn.messages).includes(marker))
    assertNoSecrets(textsShownToModel(messages))
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
    assert.match(call.state.error, /Unknown host 'nope'\. Configured hosts: bare, broken, mitm, pi, slow\./)
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

    const messages = await waitForMessages(
      serve,
      sessionID,
      (ms) => ms.some((m) => m.info.role === 'user' && messageText(m).includes('[Back from pi]')),
      120_000,
    )
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'completed', JSON.stringify(call.state))
    assert.ok(call.state.metadata.reconnects >= 1, `reconnected: ${JSON.stringify(call.state.metadata)}`)
    const remoteBash = toolParts(messages, 'bash').filter((p) => String(p.state.output).includes(marker))
    assert.equal(remoteBash.length, 1, 'the remote work arrived exactly once')
    const wakes = messages.filter((m) => m.info.role === 'user' && messageText(m).includes('[Back from pi]'))
    assert.equal(wakes.length, 1, 'the local agent was woken exactly once')
  })
})

describe('remote_login round trips that outlive the call', () => {
  test('a timed-out round trip is collected by the next call, once', async () => {
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

    // Let the remote task finish its slow step, then the next round trip to the same host collects the job
    // that kept running instead of dispatching anew.
    await llm.waitFor(
      (r) =>
        r.model === 'remote-m' &&
        r.messages.at(-1)?.role === 'tool' &&
        JSON.stringify(r.messages.at(-1)).includes(marker),
      60_000,
    )
    await prompt(sessionID, callRemoteLogin({ host: 'slow', mode: 'round-trip' }))
    messages = await waitForMessages(
      serve,
      sessionID,
      (ms) => ms.some((m) => m.info.role === 'user' && messageText(m).includes('[Back from slow]')),
      120_000,
    )
    const second = toolParts(messages, 'remote_login')[1]
    assert.equal(second.state.status, 'completed', JSON.stringify(second.state))
    assert.equal(toolParts(messages, 'bash').filter((p) => String(p.state.output).includes(marker)).length, 1)
    const dispatched = llm.requests.filter(
      (r) => r.model === 'remote-m' && JSON.stringify(r.messages.at(-1)).includes('[Environment]'),
    )
    assert.equal(
      dispatched.filter((r) => JSON.stringify(r.messages).includes(marker)).length,
      1,
      'the remote task ran once',
    )
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

  test('a failed remote run reports the last log lines', async () => {
    const sessionID = await newSession()
    await prompt(sessionID, callRemoteLogin({ host: 'broken', mode: 'round-trip' }))
    const messages = await serve.client.get(`/session/${sessionID}/message`)
    const [call] = toolParts(messages, 'remote_login')
    assert.equal(call.state.status, 'error')
    assert.match(call.state.error, /The remote run on 'broken' failed: .*\nLast log lines:\n/s)
    assert.match(call.state.error, /Error: \{\n  "name": "UnknownError"/)
    assert.ok(!call.state.error.includes('\x1b'), 'no terminal escapes')
    assertNoSecrets(textsShownToModel(messages))
  })

  test('aborting the turn stops the wait, and the job is collected later', async () => {
    const sessionID = await newSession()
    const marker = `aborted-${Date.now()}`
    const message = `CALL_TOOL:bash {"command":"sleep 3; echo ${marker}"}`
    const turn = prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip', message }))
    await llm.waitFor((r) => r.model === 'remote-m' && JSON.stringify(r.messages).includes(marker), 60_000)
    const abortedAt = Date.now()
    await serve.client.post(`/session/${sessionID}/abort`, {})
    await turn.catch(() => {})
    assert.ok(Date.now() - abortedAt < 10_000, 'the turn ended promptly after the abort')
    let messages = await serve.client.get(`/session/${sessionID}/message`)
    assert.notEqual(toolParts(messages, 'remote_login')[0].state.status, 'completed')

    await prompt(sessionID, callRemoteLogin({ host: HOST, mode: 'round-trip' }))
    messages = await waitForMessages(
      serve,
      sessionID,
      (ms) => ms.some((m) => m.info.role === 'user' && messageText(m).includes('[Back from pi]')),
      120_000,
    )
    assert.equal(toolParts(messages, 'remote_login')[1].state.status, 'completed')
    assert.equal(toolParts(messages, 'bash').filter((p) => String(p.state.output).includes(marker)).length, 1)
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

async function waitForFile(file, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
