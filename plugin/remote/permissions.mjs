// Permissions in remote tools mode. The stub refuses a path outside the workspace root with a permission
// request; it becomes an OpenCode `external_directory` prompt (ctx.ask), and the answer goes back to the
// stub. ctx.ask resolves to undefined for both `once` and `always`, so the answer itself is read from the
// `permission.replied` event of the prompt this tool call raised (the prompt log below).
import { MAX_PERMISSION_ROUNDS, PROMPT_LOG_MAX, REPLY_EVENT_WAIT_MS } from './limits.mjs'
import { toolOutputDir } from './paths.mjs'

/**
 * Remembers OpenCode's permission prompts and their answers (from the event hook), so a tool can tell
 * whether the user answered `once` or `always`.
 */
export function promptLog() {
  /** requestID → {sessionID, callID, patterns} of external_directory prompts. */
  const asked = new Map()
  /** requestID → reply. */
  const replied = new Map()
  const waiters = new Set()
  return {
    /** @param {{type: string, properties: any}} event */
    observe(event) {
      const props = event?.properties
      if (event?.type === 'permission.asked' && props?.permission === 'external_directory') {
        asked.set(props.id, {
          sessionID: props.sessionID,
          callID: props.tool?.callID,
          patterns: props.patterns,
        })
        // Prompts no tool of ours claims (another plugin's) must not pile up.
        if (asked.size > PROMPT_LOG_MAX) asked.delete(asked.keys().next().value)
      } else if (event?.type === 'permission.replied' && asked.has(props?.requestID)) {
        if (props.reply === 'reject') asked.delete(props.requestID)
        else replied.set(props.requestID, props.reply)
        for (const wake of waiters) wake()
      }
    },
    /**
     * The answer to the prompt `ctx.ask` raised for `patterns` in this tool call: `always` or `once`. No
     * prompt means OpenCode's rules allowed it without asking: `once`, so the stub stores nothing.
     */
    async answerFor(ctx, patterns) {
      const id = [...asked.keys()].findLast((key) => {
        const info = asked.get(key)
        return info.callID === ctx.callID && info.sessionID === ctx.sessionID && samePatterns(info, patterns)
      })
      if (id === undefined) return 'once'
      const reply = await waitFor(() => replied.get(id), waiters, REPLY_EVENT_WAIT_MS)
      asked.delete(id)
      replied.delete(id)
      return reply === 'always' ? 'always' : 'once'
    },
  }
}

function samePatterns(info, patterns) {
  return JSON.stringify(info.patterns ?? []) === JSON.stringify(patterns)
}

/** Resolve with `get()` once it is defined, or with undefined after `timeoutMs`. */
function waitFor(get, waiters, timeoutMs) {
  const now = get()
  if (now !== undefined) return Promise.resolve(now)
  return new Promise((resolve) => {
    const done = (value) => {
      clearTimeout(timer)
      waiters.delete(check)
      resolve(value)
    }
    const check = () => {
      const value = get()
      if (value !== undefined) done(value)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    waiters.add(check)
  })
}

/**
 * A tool call's way to the stub: every request that needs a permission first asks the user (once per
 * pattern and call), answers the stub and is retried.
 * @param {import('./env.mjs').RemoteEnv} env
 * @param {object} ctx the ToolContext
 */
export function hostCalls(env, ctx) {
  /** Patterns the user allowed during this call: later requests of the call are not asked again. */
  const allowed = new Set()

  async function permitted(send) {
    let grant
    for (let round = 0; round < MAX_PERMISSION_ROUNDS; round++) {
      const outcome = await send(grant).catch((error) => {
        throw hostError(error)
      })
      if (!outcome.permission) return outcome.result
      grant = await approve(env, ctx, allowed, outcome.permission)
    }
    throw new Error(`Too many permission requests for one call on ${env.host}.`)
  }

  return {
    /** `operation` (fs/read, glob, …) with `body`; resolves to the stub's answer. */
    call: (operation, body) =>
      permitted((grant) => env.api.remoteCall(env.place, operation, withGrant(body, grant))),
    /** A command; resolves to {stdout, stderr, exitCode, signal, timedOut, cancelled}. */
    exec: (request, requestId) =>
      permitted((grant) =>
        env.api.remoteExec(env.place, withGrant(request, grant), requestId, toolOutputDir()),
      ),
  }
}

function withGrant(body, grant) {
  return grant ? { ...body, grant } : body
}

/**
 * Get the user's answer to a stub permission request and pass it to the stub.
 * @returns {Promise<string|undefined>} the single-use grant of a `once` reply
 */
async function approve(env, ctx, allowed, permission) {
  const { requestId, patterns } = permission
  let reply = 'once'
  if (!patterns.every((pattern) => allowed.has(pattern))) {
    try {
      // The prompt names exactly what `always` approves: these paths (or `<dir>/*` subtrees) for this
      // operation's kind of access (the stub records both), nothing wider.
      await ctx.ask({
        permission: 'external_directory',
        patterns,
        always: patterns,
        metadata: {
          path: permission.path,
          filepath: permission.path,
          parentDir: parentOf(patterns),
          operation: permission.operation,
          patterns,
          host: env.host,
        },
      })
    } catch (error) {
      await env.api.remoteReply(env.place, { requestId, reply: 'reject' }).catch(() => {})
      throw rejected(error, permission, env.host)
    }
    reply = await env.prompts.answerFor(ctx, patterns)
    for (const pattern of patterns) allowed.add(pattern)
  }
  const answer = await env.api.remoteReply(env.place, { requestId, reply }).catch((error) => {
    throw hostError(error)
  })
  return answer?.grant ?? undefined
}

function parentOf(patterns) {
  return patterns[0]?.replace(/\/\*$/, '') ?? ''
}

/**
 * The error a refused permission fails the tool with. OpenCode's own rejection error is kept (its class
 * makes OpenCode stop the turn as it does for a built-in tool); only its message names what was refused.
 */
function rejected(error, permission, host) {
  const reason = error instanceof Error ? error.message : String(error)
  const message = `${reason} (${permission.operation} of ${permission.path} on host ${host}, outside the workspace root)`
  const refusal = error instanceof Error ? error : new Error(message)
  Object.defineProperty(refusal, 'message', { value: message, configurable: true, writable: true })
  refusals.add(refusal)
  return refusal
}

/** Errors of refused permissions: they end the tool call as they are, never handled as stub errors. */
const refusals = new WeakSet()

/** Rethrow a refused permission; anything else is for `handle`. */
export function unlessRefused(handle) {
  return (error) => {
    if (refusals.has(error)) throw error
    return handle(error)
  }
}

/** The addon's "remote run failed: <detail>" for a stub error, as just the stub's own words. */
export function hostError(error) {
  if (error?.code !== 'REMOTE_RUN_FAILED') return error
  const match = /^The remote run on '[^']*' failed: ([\s\S]*?)\.?$/.exec(error.message ?? '')
  return match ? Object.assign(new Error(match[1]), { code: error.code }) : error
}

/** OpenCode's own permission check for a tool (edit, read, bash, …), as the built-ins do it. */
export function askTool(ctx, permission, patterns, metadata = {}, always = ['*']) {
  return ctx.ask({ permission, patterns, always, metadata })
}
