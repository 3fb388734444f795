// The OpenCode server plugin: the `remote_login` tool. All work happens in the native addon; this file only
// adapts OpenCode's plugin API to it.
// OpenCode requires a plugin module to export nothing but the plugin, so helpers stay module-private.
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { z } from 'zod'
import { remoteToolHooks } from './remote/index.mjs'
import { registerSshProvider } from './workspace-adaptor.mjs'

const require = createRequire(import.meta.url)
const api = require('../api.js')

const TOOL = 'remote_login'

function describe(hostNames) {
  const hosts = hostNames.length > 0 ? hostNames.join(', ') : '(none configured: add hosts to hosts.json)'
  return [
    'Move the current session to a remote host over SSH and continue the task there.',
    'Use when the user asks to run, continue, delegate or finish work on a remote host, server or machine.',
    'mode "one-way" (default) hands the session over: the remote continues on its own and this conversation ends.',
    'mode "round-trip" waits until the remote is done, brings the session back here, and the local agent continues.',
    `Available hosts: ${hosts}`,
  ].join('\n')
}

/** The running opencode binary (OpenCode is a compiled Bun binary), else `opencode` from PATH. */
function opencodeBinary() {
  const exe = process.execPath ?? ''
  return path.basename(exe).startsWith('opencode') ? exe : 'opencode'
}

/** The session in `opencode export` shape, read in-process (much faster than spawning the CLI). */
async function readSession(client, sessionID, directory) {
  const query = directory ? { directory } : undefined
  const [info, messages] = await Promise.all([
    client.session.get({ path: { id: sessionID }, query }),
    client.session.messages({ path: { id: sessionID }, query }),
  ])
  if (!info?.data || !Array.isArray(messages?.data)) return undefined
  return JSON.stringify({ info: info.data, messages: messages.data })
}

/**
 * Write a round trip's text parts (JSON `TextPart`s from the addon) into the assistant message that made
 * the call, through OpenCode's own part API: it stores them and emits the bus events the running TUI
 * renders. The v1 client has no method for this route, so its underlying HTTP client is used.
 */
async function writeParts(client, sessionID, messageID, parts, directory) {
  const http = client.session?._client ?? client._client
  for (const json of parts) {
    const part = JSON.parse(json)
    const response = await http.patch({
      url: '/session/{sessionID}/message/{messageID}/part/{partID}',
      path: { sessionID, messageID, partID: part.id },
      query: directory ? { directory } : undefined,
      body: part,
      headers: { 'Content-Type': 'application/json' },
    })
    if (response?.error)
      throw new Error(`writing the remote's work failed: ${JSON.stringify(response.error)}`)
  }
}

/**
 * Prefix the session's title with `[on <host>]` after a one-way hand-over, so the session list says where
 * the conversation went. Best effort: the hand-over itself has already happened.
 */
async function markHandedOver(client, sessionID, host, directory) {
  const query = directory ? { directory } : undefined
  try {
    const info = await client.session.get({ path: { id: sessionID }, query })
    const title = info?.data?.title ?? ''
    const prefix = `[on ${host}] `
    if (title.startsWith(prefix)) return
    await client.session.update({ path: { id: sessionID }, query, body: { title: prefix + title } })
  } catch {
    // the title stays as it was
  }
}

/** `m:ss` for a progress line. */
function clock(ms) {
  const seconds = Math.floor(ms / 1000)
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`
}

/** One line of progress, e.g. `pi · waiting 0:42 · bash: uname -a`. */
function progressLine(progress) {
  const step = progress.remoteStep ? ` · ${progress.remoteStep}` : ''
  return `${progress.host} · ${progress.phase} ${clock(progress.elapsedMs)}${step}`
}

/**
 * A toast in the running TUI. The TUI shows a tool only as its name and arguments (not its title or
 * output), so progress, failures and hand-overs would otherwise reach the user only through the model.
 * Best effort: without a TUI (`opencode run`, serve) the call fails and nothing else changes.
 */
async function toast(client, directory, message, variant = 'info', title = 'remote_login') {
  try {
    await client.tui?.showToast({
      body: { title, message, variant, duration: variant === 'info' ? 3000 : 10000 },
      query: directory ? { directory } : undefined,
    })
  } catch {
    // no TUI attached
  }
}

/**
 * While a call runs, show where it is once a second: as the tool's title (web and API clients) and as a
 * toast (the TUI). Returns the function that stops it.
 */
function watchProgress(client, directory, ctx, requestId) {
  let last = ''
  const timer = setInterval(() => {
    const progress = api.loginProgress(requestId)
    if (!progress) return
    const line = progressLine(progress)
    if (line === last) return
    last = line
    ctx.metadata?.({ title: line, metadata: { ...progress } })
    toast(client, directory, line)
  }, 1000)
  return () => clearInterval(timer)
}

async function hostNames(directory, options) {
  try {
    return await api.listHosts(directory, options ?? null)
  } catch {
    return []
  }
}

export default {
  id: 'opencode-remote',
  server: async (input, options) => {
    const { client, directory } = input
    registerSshProvider(input, options, api)
    // Remote tools mode (options.remote): read, write, edit, … run on the host instead of here.
    const remote = remoteToolHooks(input, options, api)
    // Sessions just handed over one-way. The local model's next step is stopped before it starts (see
    // `chat.params`), so the local copy does not go on diverging from the one the remote now owns.
    const handedOver = new Set()

    const remoteLogin = {
      description: describe(await hostNames(directory, options)),
      args: {
        host: z.string().describe('Name of the host to move to (one of the available hosts).'),
        mode: z
          .enum(['one-way', 'round-trip'])
          .optional()
          .describe(
            'one-way (default): hand over and stop. round-trip: wait for the remote, then continue here.',
          ),
        directory: z
          .string()
          .optional()
          .describe(
            "Working directory on the remote host (created if missing). Default: the host's configured one.",
          ),
        message: z
          .string()
          .optional()
          .describe('What the remote agent should do. Default: continue the current task.'),
      },
      async execute(args, ctx) {
        const requestId = randomUUID()
        const cancel = () => api.cancelRemoteLogin(requestId)
        ctx.abort?.addEventListener('abort', cancel, { once: true })
        const stopWatching = watchProgress(client, directory, ctx, requestId)
        try {
          // Connect while the session is read: the handshake and the read overlap.
          api.warmHost(args.host, directory, options ?? null).catch(() => {})
          const exportJson = await readSession(client, ctx.sessionID, directory).catch(() => undefined)
          const result = await api.remoteLogin({
            sessionId: ctx.sessionID,
            host: args.host,
            mode: args.mode ?? 'one-way',
            directory: args.directory,
            message: args.message,
            callId: ctx.callID,
            messageId: ctx.messageID,
            requestId,
            exportJson,
            opencodeBin: opencodeBinary(),
            projectDir: directory,
            options: options ?? null,
          })
          stopWatching()
          if (result.parts.length > 0) {
            await writeParts(client, ctx.sessionID, ctx.messageID, result.parts, directory)
          }
          const oneWay = result.mode === 'one-way'
          const title = oneWay ? `Handed over to ${args.host}` : result.title
          if (oneWay) {
            handedOver.add(ctx.sessionID)
            await markHandedOver(client, ctx.sessionID, args.host, directory)
            await toast(client, directory, result.output, 'success', title)
          } else if (result.earlier) {
            await toast(client, directory, result.output, 'warning', result.title)
          } else {
            await toast(client, directory, result.title, 'success')
          }
          return {
            title,
            output: result.output,
            metadata: {
              host: args.host,
              mode: result.mode,
              jobId: result.jobId,
              earlier: result.earlier,
              dropped: result.dropped,
              reconnects: result.timings.reconnects,
              dispatchMs: Math.round(result.timings.dispatchMs),
            },
          }
        } catch (error) {
          // The model gets the error as the tool result; the user sees the same text at once.
          const cancelled = error?.code === 'CANCELLED' || ctx.abort?.aborted
          const text = String(error?.message ?? error)
          await toast(
            client,
            directory,
            text,
            cancelled ? 'warning' : 'error',
            cancelled ? `remote_login to ${args.host} cancelled` : `remote_login to ${args.host} failed`,
          )
          throw error
        } finally {
          stopWatching()
          ctx.abort?.removeEventListener('abort', cancel)
        }
      },
    }

    return {
      tool: { ...remote?.tool, [TOOL]: remoteLogin },
      ...(remote && { event: remote.event, 'chat.message': remote.chatMessage }),
      ...(remote?.system && { 'experimental.chat.system.transform': remote.system }),
      // The first LLM step after a one-way hand-over is the local model's next turn: abort it before the
      // request is made. By then the tool's result is stored, so the hand-over stays recorded as done
      // (aborting from `tool.execute.after` raced with that and sometimes marked the tool as aborted).
      'chat.params': async ({ sessionID }) => {
        if (!handedOver.delete(sessionID)) return
        await client.session
          .abort({ path: { id: sessionID }, query: directory ? { directory } : undefined })
          .catch(() => {})
      },
      // Hosts are read at call time, so the list the model sees follows edits to hosts.json.
      'tool.definition': async ({ toolID }, output) => {
        if (toolID === TOOL) output.description = describe(await hostNames(directory, options))
      },
    }
  },
}
