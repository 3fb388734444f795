// Files the user attaches to a prompt (`@file` in the TUI) in a workspace session. OpenCode 1.18.33 expands
// a `file://` attachment before the turn by running its *built-in* read tool (ToolRegistry.named() skips
// plugin tools) on this machine, so the model would get the local copy of the file. The `chat.message`
// hook runs right after that expansion, on the expanded parts: each text attachment under the local
// project directory (which stands for the workspace root) is read again on the host, and its local text
// is replaced. Images, PDFs and paths outside the project are left as OpenCode made them.
import path from 'node:path'

const CALLED = 'Called the Read tool with the following input: '
const FAILED = /^Read tool failed to read (.+) with the following error: /

/** What OpenCode's expansion of one attachment asked its read tool: the arguments, or undefined. */
function readCall(part) {
  if (part?.type !== 'text' || !part.synthetic || !part.text?.startsWith(CALLED)) return undefined
  try {
    const args = JSON.parse(part.text.slice(CALLED.length))
    return typeof args?.filePath === 'string' ? args : undefined
  } catch {
    return undefined
  }
}

function inProject(env, file) {
  const local = env.projectDir
  return Boolean(local) && path.isAbsolute(file) && (file === local || file.startsWith(`${local}/`))
}

/**
 * The context a user's attachment is read with: OpenCode asks nothing for what the user attached, but a
 * path the stub refuses (a link out of the root) is refused here too, never approved unasked.
 */
function attachContext(input) {
  return {
    sessionID: input.sessionID,
    messageID: input.messageID,
    agent: input.agent,
    callID: undefined,
    abort: new AbortController().signal,
    metadata: () => {},
    ask: async ({ permission }) => {
      if (permission === 'external_directory')
        throw new Error('not attached: it is outside the workspace root')
    },
  }
}

/** The host's text for `args`, or the reason it could not be read (as the model should see it). */
async function hostText(env, read, args, input) {
  try {
    const result = await read.execute(args, attachContext(input))
    if (result?.attachments?.length) return undefined
    return typeof result === 'string' ? result : result?.output
  } catch (error) {
    return `Read tool failed to read ${args.filePath} on host ${env.host} with the following error: ${error?.message ?? error}`
  }
}

/**
 * Replace, in the parts of a new user message, the local text of every attached project file with the
 * host's. Never throws: a prompt is not lost over an attachment.
 * @param {import('./env.mjs').RemoteEnv} env
 * @param {{execute: Function}} read the remote read tool
 * @param {{sessionID: string, messageID?: string, agent?: string}} input the chat.message input
 * @param {object[]} parts the expanded parts (changed in place)
 */
export async function attachFromHost(env, read, input, parts) {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    const args = readCall(part)
    const output = parts[i + 1]
    if (args && output?.type === 'text' && output.synthetic) {
      if (!inProject(env, args.filePath)) continue
      const text = await hostText(env, read, args, input)
      if (text !== undefined) output.text = text
      i++
      continue
    }
    // The local read failed (the file may exist only on the host): read it there instead.
    const failed = part?.type === 'text' && part.synthetic ? FAILED.exec(part.text ?? '') : null
    if (failed && inProject(env, failed[1])) {
      const args = { filePath: failed[1] }
      const text = await hostText(env, read, args, input)
      if (text !== undefined) part.text = `${CALLED}${JSON.stringify(args)}\n\n${text}`
    }
  }
}
