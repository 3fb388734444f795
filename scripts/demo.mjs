// The embedded-default demo: a throwaway sshd on loopback (remote user with its own HOME and the real
// opencode), a scripted fake LLM, and a local `opencode serve` with the packed plugin. The "user" asks to
// check something on host `pi` and come back; the transcript shows the round trip.
import { messageText as chatText } from '../__test__/harness/fake-llm.mjs'
import { messageText, waitForMessages } from '../__test__/harness/opencode.mjs'
import { startWorld } from '../__test__/support/world.mjs'

const USER_PROMPT = 'Which machine is host pi? Check it there, then come back and tell me.'

/** The fake LLM plays three parts: the local agent, the remote agent and (after the return) local again. */
function script(body) {
  const messages = body.messages ?? []
  const last = messages.at(-1)
  const lastUser = chatText([...messages].reverse().find((m) => m.role === 'user') ?? {})
  if (!body.tools?.length) return undefined // title requests: default rule
  if (last?.role === 'tool' && body.model === 'remote-m') {
    return { text: `On pi I ran uname/whoami/pwd:\n${chatText(last).trim()}` }
  }
  // Back here: the remote's work came back as text in the message holding the remote_login call.
  if (last?.role === 'tool' && body.model === 'local-m') {
    const remote = messages
      .filter((m) => m.role === 'assistant')
      .map(chatText)
      .findLast((t) => t.includes('On pi I ran'))
    const answer = remote?.slice(remote.indexOf('On pi I ran')).trim()
    return { text: `Back on the local machine. Host pi answered:\n${answer ?? '(nothing)'}` }
  }
  if (lastUser.includes('[Environment]')) {
    return {
      toolCalls: [
        { name: 'bash', args: { command: 'uname -sm; whoami; pwd', description: 'Identify host' } },
      ],
    }
  }
  if (lastUser === USER_PROMPT) {
    const message = 'Find out which machine this is (uname, user, working directory) and report.'
    return { toolCalls: [{ name: 'remote_login', args: { host: 'pi', mode: 'round-trip', message } }] }
  }
  return undefined
}

function summarize(message) {
  const who =
    message.info.role === 'user' ? 'user' : `assistant (${message.info.providerID}/${message.info.modelID})`
  const lines = []
  for (const part of message.parts.filter((p) => p.type === 'text')) lines.push(part.text.trim())
  for (const part of message.parts.filter((p) => p.type === 'tool')) {
    const result = part.state?.output ?? part.state?.error ?? ''
    lines.push(
      `[tool ${part.tool} ${JSON.stringify(part.state?.input)} -> ${part.state?.status}] ${String(result).trim()}`,
    )
  }
  return `--- ${who}\n${lines.join('\n').replace(/^/gm, '    ')}`
}

const world = await startWorld({ llm: { responder: script } })
try {
  console.log(`sshd on loopback as remote user '${world.sshd.user}' (home ${world.sshd.userHome})`)
  console.log(`local opencode serve at ${world.serve.url}; plugin installed from the packed tarball\n`)
  const sessionID = await world.newSession()
  const started = Date.now()
  await world.prompt(sessionID, USER_PROMPT)
  const messages = await waitForMessages(
    world.serve,
    sessionID,
    (ms) =>
      ms.some((m) => m.info.role === 'assistant' && messageText(m).startsWith('Back on the local machine')),
    120_000,
  )
  for (const message of messages) console.log(summarize(message))
  const call = messages.flatMap((m) => m.parts).find((p) => p.tool === 'remote_login')
  console.log(`\nround trip ${call?.state?.status} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  process.exitCode = call?.state?.status === 'completed' ? 0 : 1
} finally {
  await world.stop()
}
