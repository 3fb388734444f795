// Proves the e2e harness: a real sshd with a separate remote user, the fake LLM, and the real opencode CLI.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'

import { parseToolDirective, startFakeLlm } from './harness/fake-llm.mjs'
import {
  makeOpencodeHome,
  messageText,
  opencodeConfig,
  opencodeBin,
  remoteOpencodeEnv,
  runOpencode,
  startServe,
  waitForMessages,
} from './harness/opencode.mjs'
import { exec } from './harness/proc.mjs'
import { canConnect, startSshd } from './harness/sshd.mjs'

const tmpRoots = []
async function tmpRoot(prefix) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  tmpRoots.push(dir)
  return dir
}
after(async () => {
  for (const d of tmpRoots) await rm(d, { recursive: true, force: true })
})

describe('sshd with a separate remote user', () => {
  let sshd
  let client
  let llm
  before(async () => {
    llm = await startFakeLlm()
    // The remote user's opencode gets its config through the environment, like its PATH.
    const config = opencodeConfig({ baseURL: llm.baseURL, model: 'fake/remote-m' })
    sshd = await startSshd({ env: remoteOpencodeEnv({ OPENCODE_CONFIG_CONTENT: JSON.stringify(config) }) })
    client = await sshd.writeClientSshFiles(path.join(await tmpRoot('ocr-local-'), 'home'), { alias: 'lab' })
  })
  after(async () => {
    await sshd?.stop()
    await llm?.stop()
  })

  test('ssh -F <home>/.ssh/config runs a command as the remote user with opencode on PATH', async () => {
    assert.notEqual(sshd.user, os.userInfo().username)
    assert.match(sshd.user, /^ocr[0-9a-f]{6}$/)
    const cmd =
      'id -un; echo $HOME; command -v opencode; opencode --version; echo $OPENCODE_DISABLE_AUTOUPDATE'
    const { stdout } = await exec('ssh', ['-F', client.configPath, '-o', 'BatchMode=yes', 'lab', cmd])
    const [user, home, bin, version, flag] = stdout.trim().split('\n')
    assert.equal(user, sshd.user)
    assert.equal(home, sshd.userHome)
    // Its own copy, as the installer lays it out, never the checkout's (which may be in a 0700 clone).
    assert.equal(bin, path.join(sshd.userHome, '.opencode', 'bin', 'opencode'))
    assert.equal(bin, sshd.opencodeBin)
    assert.equal((await stat(bin)).uid, sshd.uid)
    assert.ok(!stdout.includes(path.dirname(opencodeBin)), 'the checkout is not on its PATH')
    assert.equal(version, '1.18.33')
    assert.equal(flag, '1')
  })

  test('files written over ssh belong to the remote uid (data crossed SSH)', async () => {
    await exec('ssh', [...sshd.sshArgs(), sshd.host, 'echo crossed > "$HOME/proof.txt"'])
    const st = await stat(path.join(sshd.userHome, 'proof.txt'))
    assert.equal(st.uid, sshd.uid)
    assert.notEqual(st.uid, process.getuid())
    const { stdout } = await exec('ssh', [...sshd.sshArgs(), sshd.host, 'cat proof.txt'])
    assert.equal(stdout, 'crossed\n')
  })

  test('the remote user runs opencode offline against the fake LLM, in its own HOME', async () => {
    const cmd = 'mkdir -p proj && cd proj && opencode run'
    const r = await exec('ssh', [...sshd.sshArgs(), sshd.host, cmd], {
      input: 'from remote',
      timeoutMs: 60_000,
    })
    assert.equal(r.stdout.trim(), 'FAKE_REPLY: from remote')
    assert.equal(llm.requests.at(-1).model, 'remote-m')
    const db = await stat(path.join(sshd.userHome, '.local/share/opencode/opencode.db'))
    assert.equal(db.uid, sshd.uid)
  })

  test('dropSessions() cuts open sessions but keeps listening', async () => {
    const long = spawn('ssh', [...sshd.sshArgs(), sshd.host, 'echo up; sleep 30'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    await new Promise((resolve) => long.stdout.once('data', resolve))
    const longExit = new Promise((resolve) => long.once('exit', resolve))
    await sshd.dropSessions()
    assert.equal(await longExit, 255)
    const { stdout } = await exec('ssh', [...sshd.sshArgs(), sshd.host, 'echo still'])
    assert.equal(stdout, 'still\n')
  })

  test('kill() drops sessions and refuses connections; restart() serves the same port and host key', async () => {
    const port = sshd.port
    const long = spawn('ssh', [...sshd.sshArgs(), sshd.host, 'echo up; sleep 30'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    await new Promise((resolve) => long.stdout.once('data', resolve))
    const longExit = new Promise((resolve) => long.once('exit', resolve))
    await sshd.kill()
    assert.equal(await longExit, 255)
    assert.equal(sshd.isRunning(), false)
    assert.equal(await canConnect(port), false)
    const refused = await exec('ssh', [...sshd.sshArgs(), sshd.host, 'true'], { allowFail: true })
    assert.notEqual(refused.code, 0)

    await sshd.restart()
    assert.equal(sshd.port, port)
    // StrictHostKeyChecking=yes with the original known_hosts: the host key did not change.
    const { stdout } = await exec('ssh', ['-F', client.configPath, '-o', 'BatchMode=yes', 'lab', 'id -un'])
    assert.equal(stdout.trim(), sshd.user)
  })

  test('stop() removes sshd, the remote user and the temp dir', async () => {
    const { user, dir, port } = sshd
    await sshd.stop()
    assert.equal(await canConnect(port), false)
    assert.equal(existsSync(dir), false)
    const r = await exec('id', [user], { allowFail: true })
    assert.notEqual(r.code, 0)
  })
})

describe('fake LLM', () => {
  test('parses CALL_TOOL directives, including the argv escaping of opencode run', () => {
    assert.deepEqual(parseToolDirective('x CALL_TOOL:bash {"command":"echo hi"}\nmore'), {
      name: 'bash',
      args: { command: 'echo hi' },
    })
    assert.deepEqual(parseToolDirective('"CALL_TOOL:remote_login {\\"host\\":\\"lab\\"}"'), {
      name: 'remote_login',
      args: { host: 'lab' },
    })
    assert.equal(parseToolDirective('no directive'), null)
  })

  test('streams SSE chunks that end with usage and [DONE]', async () => {
    const llm = await startFakeLlm()
    try {
      const res = await fetch(`${llm.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'local-m',
          stream: true,
          stream_options: { include_usage: true },
          tools: [{ type: 'function', function: { name: 'bash', parameters: {} } }],
          messages: [{ role: 'user', content: [{ type: 'text', text: 'CALL_TOOL:bash {"command":"ls"}' }] }],
        }),
      })
      const events = (await res.text()).split('\n\n').filter(Boolean)
      assert.equal(events.at(-1), 'data: [DONE]')
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)))
      assert.equal(chunks[0].choices[0].delta.role, 'assistant')
      const call = chunks.find((c) => c.choices[0]?.delta?.tool_calls)?.choices[0].delta.tool_calls[0]
      assert.equal(call.function.name, 'bash')
      assert.deepEqual(JSON.parse(call.function.arguments), { command: 'ls' })
      assert.equal(chunks.at(-2).choices[0].finish_reason, 'tool_calls')
      assert.ok(chunks.at(-1).usage.total_tokens > 0)
      assert.equal(llm.requests[0].model, 'local-m')

      const plain = await fetch(`${llm.baseURL}/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'remote-m', messages: [{ role: 'user', content: 'hey' }] }),
      }).then((r) => r.json())
      assert.equal(plain.choices[0].message.content, 'FAKE_REPLY: hey')
      assert.equal((await llm.waitFor((b) => b.model === 'remote-m', 1000)).model, 'remote-m')
      const models = await fetch(`${llm.baseURL}/models`).then((r) => r.json())
      assert.deepEqual(
        models.data.map((m) => m.id),
        ['local-m', 'remote-m'],
      )
    } finally {
      await llm.stop()
    }
  })
})

describe('real opencode against the fake LLM', () => {
  let llm
  let oc
  before(async () => {
    llm = await startFakeLlm()
    oc = await makeOpencodeHome(await tmpRoot('ocr-oc-'), { llm })
  })
  after(() => llm?.stop())

  test('opencode run (prompt on stdin) prints FAKE_REPLY', async () => {
    const r = await runOpencode(oc.env, oc.projectDir, ['run'], { stdin: 'hello "harness" with spaces' })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), 'FAKE_REPLY: hello "harness" with spaces')
    assert.ok(llm.replies.some((x) => x.rule === 'title'))
    assert.equal(llm.requests.at(-1).model, 'local-m')
  })

  test('CALL_TOOL:bash makes opencode run bash and the LLM sees the tool result', async () => {
    const before = llm.requests.length
    const r = await runOpencode(oc.env, oc.projectDir, ['run', '--format', 'json'], {
      stdin: 'CALL_TOOL:bash {"command":"echo hi"}',
    })
    assert.equal(r.code, 0, r.stderr)
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    const tool = events.find((e) => e.type === 'tool_use').part
    assert.equal(tool.tool, 'bash')
    assert.equal(tool.state.status, 'completed')
    assert.equal(tool.state.output, 'hi\n')
    const seen = await llm.waitFor((b, i) => i >= before && b.messages.at(-1).role === 'tool', 5000)
    assert.equal(seen.messages.at(-1).content, 'hi\n')
    assert.ok(events.some((e) => e.type === 'text' && e.part.text.startsWith('FAKE_TOOL_RESULT_SEEN: hi')))
  })

  test('opencode serve: POST /session and POST /session/:id/message', async () => {
    const serve = await startServe(oc.env, oc.projectDir)
    try {
      assert.match(serve.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      const health = await serve.client.get('/global/health')
      assert.equal(health.version, '1.18.33')
      const session = await serve.client.post('/session', { title: 'harness' })
      assert.match(session.id, /^ses_/)
      const reply = await serve.client.post(`/session/${session.id}/message`, {
        model: { providerID: 'fake', modelID: 'remote-m' },
        parts: [{ type: 'text', text: 'hello serve' }],
      })
      assert.equal(messageText(reply), 'FAKE_REPLY: hello serve')
      const messages = await waitForMessages(serve, session.id, (ms) =>
        ms.some((m) => m.info.role === 'assistant' && messageText(m).startsWith('FAKE_REPLY')),
      )
      assert.deepEqual(
        messages.map((m) => m.info.role),
        ['user', 'assistant'],
      )
      assert.equal(llm.requests.at(-1).model, 'remote-m')
    } finally {
      await serve.stop()
    }
  })
})
