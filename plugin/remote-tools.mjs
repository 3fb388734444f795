// Remote tools mode: with plugin options `{"remote": {"host", "root", "workspace"}}` OpenCode's file and shell
// tools (read, write, edit, glob, grep, bash, apply_patch, plus list) are replaced by tools of the same names
// and arguments that run on the host through the stub (via the addon's remoteCall/remoteExec). Outputs follow
// the OpenCode 1.18.33 built-ins, so the model notices nothing but the host.
//
// Permission-first paths: the stub refuses a path outside the workspace root with a permission request; it
// becomes an OpenCode `external_directory` prompt (ctx.ask), and the answer goes back to the stub. ctx.ask
// resolves to undefined for both `once` and `always`, so the answer itself is read from the
// `permission.replied` event of the prompt this tool call raised.
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'

/** Lines and bytes OpenCode shows of a tool's output before it truncates it (Truncate MAX_LINES/MAX_BYTES). */
const OUTPUT_MAX_LINES = 2000
const OUTPUT_MAX_BYTES = 50 * 1024
/** Lines of a read's frame (<path>, <type>, <content>, blank, note, </content>). */
const READ_FRAME_LINES = 6
/** Characters of a line a read shows; longer lines are cut with a note. */
const READ_LINE_CHARS = 2000
const LINE_CUT_NOTE = `... (line truncated to ${READ_LINE_CHARS} chars)`
/** Matches a grep and paths a glob or list show (the built-ins' limit). */
const SEARCH_LIMIT = 100
/** Entries a directory read asks the stub for. */
const DIR_ENTRIES_MAX = 100_000
/** Command timeout when the model gives none (OpenCode's default), in ms. */
const BASH_TIMEOUT_MS = 120_000
/** Characters of command output kept in the tool part's metadata (the UI preview). */
const BASH_PREVIEW_CHARS = 30_000
/** Room left for the truncation and <shell_metadata> notes, so OpenCode never truncates a second time. */
const BASH_NOTE_LINES = 12
const BASH_NOTE_BYTES = 2048
/** How long to wait for the `permission.replied` event after ctx.ask resolved, in ms. */
const REPLY_EVENT_WAIT_MS = 2000
/** Unanswered external_directory prompts remembered at most. */
const PROMPT_LOG_MAX = 200
/** Permission rounds one stub request may go through (each refused path is asked once). */
const MAX_PERMISSION_ROUNDS = 8
/** Directories `list` leaves out, like OpenCode's former ls tool. */
const LIST_IGNORES = [
  'node_modules',
  '.git',
  '__pycache__',
  '.venv',
  'venv',
  'dist',
  'build',
  'target',
  '.cache',
]
const MIME_BY_EXTENSION = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.pdf': 'application/pdf',
}
const BINARY_EXTENSIONS = new Set(
  '.zip .tar .gz .exe .dll .so .class .jar .war .7z .doc .docx .xls .xlsx .ppt .pptx .odt .ods .odp .bin .dat .obj .o .a .lib .wasm .pyc .pyo'.split(
    ' ',
  ),
)

/**
 * The hooks of remote tools mode, or undefined when the options have no `remote` section.
 * @param {import('@opencode-ai/plugin').PluginInput} input
 * @param {Record<string, any>|undefined} options the plugin options (`remote`, `hosts`, …)
 * @param {object} api the addon API (api.js)
 * @returns {{tool: Record<string, object>, event: (input: {event: object}) => Promise<void>}|undefined}
 */
export function remoteToolHooks(input, options, api) {
  const remote = options?.remote
  if (!remote) return undefined
  if (typeof remote.host !== 'string' || !remote.host) {
    throw new Error('opencode-remote: the "remote" option needs a "host" (a configured host name)')
  }
  const env = remoteEnv(input, options, api)
  // Connect and attach now, so the first tool call finds the stub ready (failures surface there).
  api.remoteAttach(env.place).catch(() => {})
  return {
    tool: {
      read: readTool(env),
      write: writeTool(env),
      edit: editTool(env),
      list: listTool(env),
      glob: globTool(env),
      grep: grepTool(env),
      bash: bashTool(env),
      apply_patch: patchTool(env),
    },
    event: async ({ event }) => env.prompts.observe(event),
  }
}

/**
 * Everything the tools share: where they run, the addon, the prompt log.
 * @returns {RemoteEnv}
 */
function remoteEnv(input, options, api) {
  const { host, root = '~', workspace = 'default', shell } = options.remote
  const place = { host, workspace, root, projectDir: input.directory, options }
  let rootPath
  return {
    api,
    host,
    place,
    projectDir: input.directory,
    shell: { name: shell ?? 'bash', fixed: Boolean(shell) },
    prompts: promptLog(),
    /** The canonical workspace root on the host, asked once. */
    root() {
      rootPath ??= api.remoteCall(place, 'fs/stat', { path: '.' }).then(
        (outcome) => outcome.result?.path ?? root,
        (error) => {
          rootPath = undefined
          throw hostError(error)
        },
      )
      return rootPath
    },
  }
}

/**
 * @typedef {object} RemoteEnv
 * @property {object} api
 * @property {string} host
 * @property {object} place the addon's RemotePlace
 * @property {string} projectDir the local project directory
 * @property {{name: string, fixed: boolean}} shell
 * @property {ReturnType<typeof promptLog>} prompts
 * @property {() => Promise<string>} root
 */

// ---------------------------------------------------------------------------------------------------------
// Permissions

/**
 * Remembers OpenCode's permission prompts and their answers (from the event hook), so a tool can tell
 * whether the user answered `once` or `always`.
 */
function promptLog() {
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
 * @param {RemoteEnv} env
 * @param {object} ctx the ToolContext
 */
function hostCalls(env, ctx) {
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
function unlessRefused(handle) {
  return (error) => {
    if (refusals.has(error)) throw error
    return handle(error)
  }
}

/** The addon's "remote run failed: <detail>" for a stub error, as just the stub's own words. */
function hostError(error) {
  if (error?.code !== 'REMOTE_RUN_FAILED') return error
  const match = /^The remote run on '[^']*' failed: ([\s\S]*?)\.?$/.exec(error.message ?? '')
  return match ? Object.assign(new Error(match[1]), { code: error.code }) : error
}

/** OpenCode's own permission check for a tool (edit, read, bash, …), as the built-ins do it. */
function askTool(ctx, permission, patterns, metadata = {}, always = ['*']) {
  return ctx.ask({ permission, patterns, always, metadata })
}

// ---------------------------------------------------------------------------------------------------------
// Paths

/**
 * A path as the stub takes it: the local project directory stands for the workspace root (the model sees it
 * in its system prompt), other absolute paths are passed as is, relative ones resolve against the root.
 * @param {RemoteEnv} env
 * @param {string|undefined} p
 */
function hostPath(env, p) {
  if (!p) return p
  const local = env.projectDir
  if (local && path.isAbsolute(p)) {
    if (p === local) return '.'
    if (p.startsWith(local.endsWith('/') ? local : `${local}/`))
      return p.slice(local.length).replace(/^\/+/, '')
  }
  return p
}

/** `p` relative to the workspace root when it is inside it, else as is (titles, patterns). */
async function shown(env, p) {
  const root = await env.root().catch(() => undefined)
  if (!root || !path.isAbsolute(p)) return p
  if (p === root) return '.'
  return p.startsWith(`${root}/`) ? p.slice(root.length + 1) : p
}

/** Where OpenCode saves truncated tool output; those files are local even in remote tools mode. */
function toolOutputDir() {
  const data = process.env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share')
  return path.join(data, 'opencode', 'tool-output')
}

function isToolOutput(p) {
  return Boolean(p) && path.isAbsolute(p) && path.dirname(path.resolve(p)) === toolOutputDir()
}

// ---------------------------------------------------------------------------------------------------------
// read

const READ_DESCRIPTION = `Read a file or directory on the remote host HOST. If the path does not exist, an error is returned.

Usage:
- The filePath parameter should be an absolute path; relative paths are resolved against the workspace root.
- By default, this tool returns up to 2000 lines from the start of the file.
- The offset parameter is the line number to start from (1-indexed).
- To read later sections, call this tool again with a larger offset.
- Use the grep tool to find specific content in large files or files with long lines.
- If you are unsure of the correct file path, use the glob tool to look up filenames by glob pattern.
- Contents are returned with each line prefixed by its line number as \`<line>: <content>\`. For example, if a file has contents "foo\\n", you will receive "1: foo\\n". For directories, entries are returned one per line (without line numbers) with a trailing \`/\` for subdirectories.
- Any line longer than 2000 characters is truncated.
- Call this tool in parallel when you know there are multiple files you want to read.
- Avoid tiny repeated slices (30 line chunks). If you need more context, read a larger window.
- This tool can read image files and PDFs and return them as file attachments.`

function readTool(env) {
  return {
    description: READ_DESCRIPTION.replace('HOST', env.host),
    args: {
      filePath: z.string().describe('The absolute path to the file or directory to read'),
      offset: z
        .number()
        .int()
        .min(0)
        .optional()
        .describe('The line number to start reading from (1-indexed)'),
      limit: z
        .number()
        .int()
        .min(0)
        .optional()
        .describe('The maximum number of lines to read (defaults to 2000)'),
    },
    async execute(args, ctx) {
      if (isToolOutput(args.filePath)) return readLocal(args)
      const target = hostPath(env, args.filePath)
      await askTool(ctx, 'read', [await shown(env, target)])
      const host = hostCalls(env, ctx)
      const mime = MIME_BY_EXTENSION[path.extname(target).toLowerCase()]
      if (mime) return readAttachment(env, host, target, mime)
      if (BINARY_EXTENSIONS.has(path.extname(target).toLowerCase())) {
        const stat = await host.call('fs/stat', { path: target })
        if (stat.exists && stat.kind === 'file') throw new Error(`Cannot read binary file: ${stat.path}`)
      }
      const first = args.offset || 1
      const limit = Math.min(args.limit ?? OUTPUT_MAX_LINES, OUTPUT_MAX_LINES - READ_FRAME_LINES)
      const request = { path: target, offset: first - 1, limit, maxLineChars: READ_LINE_CHARS + 1 }
      const result = await host
        .call('fs/read', request)
        .catch(unlessRefused((error) => readFailed(env, host, target, error)))
      if (result.entries) return directoryOutput(env, result, first, limit)
      return fileOutput(env, result, first)
    },
  }
}

/** A read that failed: a missing file (with suggestions) or a directory (listed), else the error itself. */
async function readFailed(env, host, target, error) {
  if (error?.code === 'REMOTE_IS_DIRECTORY') {
    return host.call('fs/list', { path: target, limit: DIR_ENTRIES_MAX })
  }
  if (error?.code !== 'REMOTE_NOT_FOUND') throw error
  const stat = await host.call('fs/stat', { path: target }).catch(() => undefined)
  throw new Error(await missingFile(env, stat?.path ?? target))
}

/** "File not found" with up to three similar names from the same directory. */
async function missingFile(env, file) {
  const dir = path.dirname(file)
  const base = path.basename(file).toLowerCase()
  const outcome = await env.api.remoteCall(env.place, 'fs/list', { path: dir }).catch(() => undefined)
  const similar = (outcome?.result?.entries ?? [])
    .map((entry) => entry.name)
    .filter((name) => name.toLowerCase().includes(base) || base.includes(name.toLowerCase()))
    .slice(0, 3)
    .map((name) => path.join(dir, name))
  if (similar.length === 0) return `File not found: ${file}`
  return `File not found: ${file}\n\nDid you mean one of these?\n${similar.join('\n')}`
}

/** The built-in read's file format: line-numbered content in a <content> frame, with a paging note. */
async function fileOutput(env, result, first) {
  if (result.binary) throw new Error(`Cannot read binary file: ${result.path}`)
  const total = result.totalLines
  if (total < first && !(total === 0 && first === 1)) {
    throw new Error(`Offset ${first} is out of range for this file (${total} lines)`)
  }
  const head = `<path>${result.path}</path>\n<type>file</type>\n<content>\n`
  const page = pageOf(result.lines, first, OUTPUT_MAX_BYTES - Buffer.byteLength(head) - 256)
  const last = first + page.lines.length - 1
  let note = `(End of file - total ${total} lines)`
  if (page.cut)
    note = `(Output capped at 50 KB. Showing lines ${first}-${last}. Use offset=${last + 1} to continue.)`
  else if (result.truncated)
    note = `(Showing lines ${first}-${last} of ${total}. Use offset=${last + 1} to continue.)`
  const body = page.lines.map((line, i) => `${first + i}: ${line}`).join('\n')
  return {
    title: await shown(env, result.path),
    output: `${head}${body}\n\n${note}\n</content>`,
    metadata: {
      preview: page.lines.slice(0, 20).join('\n'),
      truncated: page.cut || result.truncated,
      loaded: [],
      host: env.host,
    },
  }
}

/** Lines as shown (long ones cut), up to `budget` bytes of numbered output. */
function pageOf(lines, first, budget) {
  const shownLines = []
  let bytes = 0
  for (const raw of lines) {
    const line = raw.length > READ_LINE_CHARS ? raw.slice(0, READ_LINE_CHARS) + LINE_CUT_NOTE : raw
    const size = Buffer.byteLength(`${first + shownLines.length}: ${line}`) + 1
    if (bytes + size > budget) return { lines: shownLines, cut: true }
    shownLines.push(line)
    bytes += size
  }
  return { lines: shownLines, cut: false }
}

/** The built-in read's directory format: entries (subdirectories with `/`) in an <entries> frame. */
async function directoryOutput(env, list, first, limit) {
  const names = list.entries
    .map((entry) => (entry.kind === 'dir' ? `${entry.name}/` : entry.name))
    .sort((a, b) => a.localeCompare(b))
  const page = names.slice(first - 1, first - 1 + limit)
  const more = first - 1 + page.length < names.length
  const note = more
    ? `(Showing ${page.length} of ${names.length} entries. Use 'offset' parameter to read beyond entry ${first + page.length})`
    : `(${names.length} entries)`
  return {
    title: await shown(env, list.path),
    output: [
      `<path>${list.path}</path>`,
      '<type>directory</type>',
      '<entries>',
      page.join('\n'),
      `\n${note}`,
      '</entries>',
    ].join('\n'),
    metadata: { preview: page.slice(0, 20).join('\n'), truncated: more, loaded: [], host: env.host },
  }
}

/** An image or PDF, returned as an attachment like the built-in does. */
async function readAttachment(env, host, target, mime) {
  const result = await host
    .call('fs/read', { path: target, mode: 'bytes' })
    .catch(unlessRefused((error) => readFailed(env, host, target, error)))
  if (result.entries) throw new Error(`Cannot read a directory as ${mime}: ${result.path}`)
  const output = mime === 'application/pdf' ? 'PDF read successfully' : 'Image read successfully'
  return {
    title: await shown(env, result.path),
    output,
    metadata: { preview: output, truncated: false, loaded: [], host: env.host },
    attachments: [{ type: 'file', mime, url: `data:${mime};base64,${result.base64}` }],
  }
}

/** A file OpenCode saved a truncated tool output to: it is local, so it is read here. */
async function readLocal(args) {
  const text = await readFile(args.filePath, 'utf8').catch(() => {
    throw new Error(`File not found: ${args.filePath}`)
  })
  const all = text.split('\n')
  if (all.at(-1) === '') all.pop()
  const first = args.offset || 1
  const limit = Math.min(args.limit ?? OUTPUT_MAX_LINES, OUTPUT_MAX_LINES - READ_FRAME_LINES)
  const lines = all.slice(first - 1, first - 1 + limit)
  const result = {
    path: args.filePath,
    lines,
    totalLines: all.length,
    truncated: first - 1 + lines.length < all.length,
  }
  const env = { root: async () => undefined, host: 'local' }
  return fileOutput(env, result, first)
}

// ---------------------------------------------------------------------------------------------------------
// write, edit

const WRITE_DESCRIPTION = `Writes a file on the remote host HOST.

Usage:
- This tool will overwrite the existing file if there is one at the provided path.
- If this is an existing file, you MUST use the Read tool first to read the file's contents.
- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.
- NEVER proactively create documentation files (*.md) or README files. Only create documentation files if explicitly requested by the User.
- Only use emojis if the user explicitly requests it. Avoid writing emojis to files unless asked.`

function writeTool(env) {
  return {
    description: WRITE_DESCRIPTION.replace('HOST', env.host),
    args: {
      content: z.string().describe('The content to write to the file'),
      filePath: z
        .string()
        .describe('The absolute path to the file to write (must be absolute, not relative)'),
    },
    async execute(args, ctx) {
      const target = hostPath(env, args.filePath)
      await askTool(ctx, 'edit', [await shown(env, target)], { filepath: target })
      const written = await hostCalls(env, ctx).call('fs/write', {
        path: target,
        content: args.content,
        createDirs: true,
      })
      return {
        title: await shown(env, written.path),
        output: 'Wrote file successfully.',
        metadata: { filepath: written.path, exists: !written.created, host: env.host },
      }
    },
  }
}

const EDIT_DESCRIPTION = `Performs exact string replacements in files on the remote host HOST.

Usage:
- You must use your \`Read\` tool at least once in the conversation before editing. This tool will error if you attempt an edit without reading the file.
- When editing text from Read tool output, ensure you preserve the exact indentation (tabs/spaces) as it appears AFTER the line number prefix. The line number prefix format is: line number + colon + space (e.g., \`1: \`). Everything after that space is the actual file content to match. Never include any part of the line number prefix in the oldString or newString.
- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.
- Only use emojis if the user explicitly requests it. Avoid adding emojis to files unless asked.
- The edit will FAIL if \`oldString\` is not found in the file with an error "oldString not found in content".
- The edit will FAIL if \`oldString\` is found multiple times in the file with an error "Found multiple matches for oldString. Provide more surrounding lines in oldString to identify the correct match." Either provide a larger string with more surrounding context to make it unique or use \`replaceAll\` to change every instance of \`oldString\`.
- Use \`replaceAll\` for replacing and renaming strings across the file. This parameter is useful if you want to rename a variable for instance.`

function editTool(env) {
  return {
    description: EDIT_DESCRIPTION.replace('HOST', env.host),
    args: {
      filePath: z.string().describe('The absolute path to the file to modify'),
      oldString: z.string().describe('The text to replace'),
      newString: z.string().describe('The text to replace it with (must be different from oldString)'),
      replaceAll: z.boolean().optional().describe('Replace all occurrences of oldString (default false)'),
    },
    async execute(args, ctx) {
      if (!args.filePath) throw new Error('filePath is required')
      if (args.oldString === args.newString) {
        throw new Error('No changes to apply: oldString and newString are identical.')
      }
      const target = hostPath(env, args.filePath)
      const host = hostCalls(env, ctx)
      const before = await readText(host, target, args.oldString === '')
      const after = before === undefined ? args.newString : replaceIn(before.text, args)
      await askTool(ctx, 'edit', [await shown(env, target)], { filepath: target })
      const written = await host.call('fs/write', { path: target, content: after, createDirs: true })
      return {
        title: await shown(env, written.path),
        output: 'Edit applied successfully.',
        metadata: { filepath: written.path, host: env.host, ...lineCounts(before?.text ?? '', after) },
      }
    },
  }
}

/**
 * A whole file as text, or undefined when `mayBeMissing` and it does not exist (an edit with an empty
 * oldString creates the file; on an existing file that is an error, as in the built-in).
 */
async function readText(host, target, mayBeMissing) {
  const stat = await host.call('fs/stat', { path: target })
  if (!stat.exists) {
    if (mayBeMissing) return undefined
    throw new Error(`File ${stat.path} not found`)
  }
  if (stat.kind === 'dir') throw new Error(`Path is a directory, not a file: ${stat.path}`)
  if (mayBeMissing) {
    throw new Error(
      'oldString cannot be empty when editing an existing file. Provide the exact text to replace, or use write for an intentional full-file replacement.',
    )
  }
  const result = await host.call('fs/read', { path: target, mode: 'bytes' })
  return { path: result.path, text: Buffer.from(result.base64 ?? '', 'base64').toString('utf8') }
}

/**
 * OpenCode's edit semantics: oldString must occur exactly once (or replaceAll), in the file's own line
 * endings; when it does not occur exactly, a match that differs only in each line's surrounding
 * whitespace is accepted, like the built-in's line-trimmed fallback.
 */
function replaceIn(content, { oldString, newString, replaceAll }) {
  const crlf = content.includes('\r\n')
  const ending = (text) => (crlf ? text.replace(/\r?\n/g, '\r\n') : text.replace(/\r\n/g, '\n'))
  const [from, to] = [ending(oldString), ending(newString)]
  let found = false
  for (const candidate of [from, ...lineTrimmedMatches(content, from)]) {
    const first = content.indexOf(candidate)
    if (first === -1) continue
    found = true
    if (replaceAll) return content.replaceAll(candidate, () => to)
    if (content.lastIndexOf(candidate) !== first) continue
    return content.slice(0, first) + to + content.slice(first + candidate.length)
  }
  if (!found) {
    throw new Error(
      'Could not find oldString in the file. It must match exactly, including whitespace, indentation, and line endings.',
    )
  }
  throw new Error(
    'Found multiple matches for oldString. Provide more surrounding context to make the match unique.',
  )
}

/** Spans of `content` whose lines equal `search`'s lines after trimming each line. */
function lineTrimmedMatches(content, search) {
  const lines = content.split('\n')
  const wanted = search.split('\n')
  if (wanted.at(-1) === '') wanted.pop()
  if (wanted.length === 0) return []
  const spans = []
  for (let start = 0; start + wanted.length <= lines.length; start++) {
    if (!wanted.every((line, i) => lines[start + i].trim() === line.trim())) continue
    spans.push(lines.slice(start, start + wanted.length).join('\n'))
  }
  return spans
}

/** Added and removed line counts for the tool part's metadata. */
function lineCounts(before, after) {
  const old = new Set(before.split('\n'))
  const now = new Set(after.split('\n'))
  return {
    additions: [...now].filter((line) => !old.has(line)).length,
    deletions: [...old].filter((line) => !now.has(line)).length,
  }
}

// ---------------------------------------------------------------------------------------------------------
// list, glob, grep

const LIST_DESCRIPTION = `Lists files and directories on the remote host HOST as a tree. The path parameter must be absolute; omit it to use the workspace root. You can optionally provide an array of glob patterns to ignore with the ignore parameter. You should generally prefer the Glob and Grep tools, if you know which directories to search.`

function listTool(env) {
  return {
    description: LIST_DESCRIPTION.replace('HOST', env.host),
    args: {
      path: z
        .string()
        .optional()
        .describe('The absolute path to the directory to list (must be absolute, not relative)'),
      ignore: z.array(z.string()).optional().describe('List of glob patterns to ignore'),
    },
    async execute(args, ctx) {
      const dir = hostPath(env, args.path) || '.'
      await askTool(ctx, 'list', [await shown(env, dir)], { path: dir })
      const ignore = [...LIST_IGNORES, ...(args.ignore ?? [])]
      const found = await hostCalls(env, ctx).call('glob', {
        pattern: '*',
        path: dir,
        ignore,
        limit: SEARCH_LIMIT,
      })
      return {
        title: await shown(env, found.path),
        output: renderTree(found.path, found.files),
        metadata: { count: found.files.length, truncated: found.truncated, host: env.host },
      }
    },
  }
}

/** `base/` and below it the files, two spaces per level, directories before files, each sorted. */
function renderTree(base, files) {
  const tree = { dirs: new Map(), files: [] }
  for (const file of files) {
    const parts = path.relative(base, file).split('/')
    let node = tree
    for (const part of parts.slice(0, -1)) {
      if (!node.dirs.has(part)) node.dirs.set(part, { dirs: new Map(), files: [] })
      node = node.dirs.get(part)
    }
    node.files.push(parts.at(-1))
  }
  const lines = [`${base}/`]
  const walk = (node, depth) => {
    for (const name of [...node.dirs.keys()].sort()) {
      lines.push(`${'  '.repeat(depth)}${name}/`)
      walk(node.dirs.get(name), depth + 1)
    }
    for (const name of node.files.sort()) lines.push(`${'  '.repeat(depth)}${name}`)
  }
  walk(tree, 1)
  return `${lines.join('\n')}\n`
}

const GLOB_DESCRIPTION = `- Fast file pattern matching tool on the remote host HOST that works with any codebase size
- Supports glob patterns like "**/*.js" or "src/**/*.ts"
- Returns matching file paths sorted by modification time
- Use this tool when you need to find files by name patterns
- When you are doing an open-ended search that may require multiple rounds of globbing and grepping, use the Task tool instead
- You have the capability to call multiple tools in a single response. It is always better to speculatively perform multiple searches as a batch that are potentially useful.`

function globTool(env) {
  return {
    description: GLOB_DESCRIPTION.replace('HOST', env.host),
    args: {
      pattern: z.string().describe('The glob pattern to match files against'),
      path: z
        .string()
        .optional()
        .describe(
          'The directory to search in. If not specified, the workspace root will be used. IMPORTANT: Omit this field to use the default directory. DO NOT enter "undefined" or "null" - simply omit it for the default behavior. Must be a valid directory path if provided.',
        ),
    },
    async execute(args, ctx) {
      await askTool(ctx, 'glob', [args.pattern], { pattern: args.pattern, path: args.path })
      const host = hostCalls(env, ctx)
      const dir = hostPath(env, args.path) || '.'
      const found = await host.call('glob', { pattern: args.pattern, path: dir, limit: SEARCH_LIMIT }).catch(
        unlessRefused(async (error) => {
          const stat = await host.call('fs/stat', { path: dir }).catch(() => undefined)
          throw stat?.kind === 'file' ? new Error(`glob path must be a directory: ${stat.path}`) : error
        }),
      )
      const lines = found.files.length === 0 ? ['No files found'] : [...found.files]
      if (found.files.length > 0 && found.truncated) {
        lines.push(
          '',
          `(Results are truncated: showing first ${SEARCH_LIMIT} results. Consider using a more specific path or pattern.)`,
        )
      }
      return {
        title: await shown(env, found.path),
        output: lines.join('\n'),
        metadata: { count: found.files.length, truncated: found.truncated, host: env.host },
      }
    },
  }
}

const GREP_DESCRIPTION = `- Fast content search tool on the remote host HOST that works with any codebase size
- Searches file contents using regular expressions
- Supports full regex syntax (eg. "log.*Error", "function\\s+\\w+", etc.)
- Filter files by pattern with the include parameter (eg. "*.js", "*.{ts,tsx}")
- Returns file paths and line numbers with matching lines
- Use this tool when you need to find files containing specific patterns
- If you need to identify/count the number of matches within files, use the Bash tool with \`rg\` (ripgrep) directly if the host has it. Do NOT use \`grep\`.
- When you are doing an open-ended search that may require multiple rounds of globbing and grepping, use the Task tool instead`

function grepTool(env) {
  return {
    description: GREP_DESCRIPTION.replace('HOST', env.host),
    args: {
      pattern: z.string().describe('The regex pattern to search for in file contents'),
      path: z.string().optional().describe('The directory to search in. Defaults to the workspace root.'),
      include: z
        .string()
        .optional()
        .describe('File pattern to include in the search (e.g. "*.js", "*.{ts,tsx}")'),
    },
    async execute(args, ctx) {
      if (!args.pattern) throw new Error('pattern is required')
      await askTool(ctx, 'grep', [args.pattern], {
        pattern: args.pattern,
        path: args.path,
        include: args.include,
      })
      const found = isToolOutput(args.path)
        ? await grepLocal(args)
        : await hostCalls(env, ctx).call('grep', {
            pattern: args.pattern,
            path: hostPath(env, args.path) || '.',
            include: args.include,
            limit: SEARCH_LIMIT,
          })
      return {
        title: args.pattern,
        output: grepOutput(found),
        metadata: { matches: found.matches.length, truncated: found.truncated, host: env.host },
      }
    },
  }
}

/** "Found N matches", then each file's path and its `  Line n: text` lines, files apart by a blank line. */
function grepOutput(found) {
  if (found.matches.length === 0) return 'No files found'
  const lines = [`Found ${found.matches.length} matches${found.truncated ? ' (more matches available)' : ''}`]
  let current
  for (const match of found.matches) {
    if (match.path !== current) {
      if (current !== undefined) lines.push('')
      current = match.path
      lines.push(`${match.path}:`)
    }
    lines.push(`  Line ${match.line}: ${match.text}`)
  }
  if (found.truncated) lines.push('', '(Results truncated. Consider using a more specific path or pattern.)')
  return lines.join('\n')
}

/** grep in a local tool-output file (JavaScript regex syntax). */
async function grepLocal(args) {
  const regex = new RegExp(args.pattern)
  const text = await readFile(args.path, 'utf8')
  const matches = text
    .split('\n')
    .map((line, i) => ({ path: args.path, line: i + 1, text: line }))
    .filter((match) => regex.test(match.text))
  return { matches: matches.slice(0, SEARCH_LIMIT), truncated: matches.length > SEARCH_LIMIT }
}

// ---------------------------------------------------------------------------------------------------------
// bash

const BASH_DESCRIPTION = `Executes a given bash command on the remote host HOST with optional timeout.

All commands run in the workspace root on HOST by default. Use the \`workdir\` parameter if you need to run a command in a different directory. AVOID using \`cd <directory> && <command>\` patterns - use \`workdir\` instead.

IMPORTANT: This tool is for terminal operations like git, npm, docker, etc. DO NOT use it for file operations (reading, writing, editing, searching, finding files) - use the specialized tools for this instead.

Usage notes:
  - The command argument is required.
  - You can specify an optional timeout in milliseconds. If not specified, commands will time out after 120000ms.
  - Always quote file paths that contain spaces with double quotes.
  - If the output exceeds 2000 lines or 51200 bytes, it will be truncated and the full output will be written to a file. You can use Read with offset/limit to read specific sections or Grep to search the full content.
  - Avoid using Bash with the \`find\`, \`grep\`, \`cat\`, \`head\`, \`tail\`, \`sed\`, \`awk\`, or \`echo\` commands, unless explicitly instructed or when these commands are truly necessary for the task. Prefer the dedicated tools: Glob (files), Grep (content), Read, Edit, Write.
  - If the commands are independent, make multiple bash tool calls in a single message; if they depend on each other, chain them with '&&' in one call.
  - Only commit, amend, push, or create PRs when explicitly requested.`

function bashTool(env) {
  return {
    description: BASH_DESCRIPTION.replaceAll('HOST', env.host),
    args: {
      command: z.string().describe('The command to execute'),
      timeout: z.number().int().positive().optional().describe('Optional timeout in milliseconds'),
      workdir: z
        .string()
        .optional()
        .describe(
          "The working directory to run the command in. Defaults to the current directory. Use this instead of 'cd' commands.",
        ),
    },
    async execute(args, ctx) {
      if (args.timeout !== undefined && args.timeout < 0) {
        throw new Error(`Invalid timeout value: ${args.timeout}. Timeout must be a positive number.`)
      }
      // "Always" approves the command's program (`git *`), not every command, as the built-in does.
      const program = args.command.trim().split(/\s+/)[0] || '*'
      await askTool(ctx, 'bash', [args.command], { command: args.command }, [`${program} *`])
      const timeoutMs = args.timeout ?? BASH_TIMEOUT_MS
      const requestId = randomUUID()
      const cwd = hostPath(env, args.workdir)
      const request = {
        // One stream, in order, like the built-in's: the shell's stderr joins its stdout.
        command: `exec 2>&1; ${args.command}`,
        cwd,
        timeoutMs,
        // Paths the command names outside the working directory: the stub asks for those outside the
        // workspace root, as OpenCode's own bash asks for external directories.
        paths: commandPaths(args.command, cwd).map((p) => hostPath(env, p)),
      }
      const result = await abortable(runCommand(env, ctx, request, requestId), ctx.abort, () =>
        env.api.cancelRemoteExec(requestId),
      )
      return bashOutput(env, args.command, timeoutMs, result)
    },
  }
}

/** Run with the configured shell; when the default `bash` is missing on the host, fall back to /bin/sh. */
async function runCommand(env, ctx, request, requestId) {
  const host = hostCalls(env, ctx)
  try {
    return await host.exec({ ...request, shell: env.shell.name }, requestId)
  } catch (error) {
    if (env.shell.fixed || !/could not start/.test(error?.message ?? '')) throw error
    env.shell = { name: '/bin/sh', fixed: true }
    return host.exec({ ...request, shell: env.shell.name }, requestId)
  }
}

/**
 * `run`, or `{aborted: true}` as soon as `signal` fires; `onAbort` then stops the command on the host
 * (the addon cancels it through the stub, which kills its whole process group).
 */
function abortable(run, signal, onAbort) {
  if (!signal) return run
  return new Promise((resolve, reject) => {
    const abort = () => {
      onAbort()
      resolve({ aborted: true, stdout: '', stderr: '', exitCode: null })
    }
    if (signal.aborted) return abort()
    signal.addEventListener('abort', abort, { once: true })
    run.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** The built-in bash's output: the output's tail (full output saved locally when cut), notes, exit code. */
async function bashOutput(env, command, timeoutMs, result) {
  const all = `${result.stdout ?? ''}${result.stderr ?? ''}`
  const notes = []
  if (result.timedOut) {
    notes.push(
      `shell tool terminated command after exceeding timeout ${timeoutMs} ms. If this command is expected to take longer and is not waiting for interactive input, retry with a larger timeout value in milliseconds.`,
    )
  }
  if (result.aborted || result.cancelled) notes.push('User aborted the command')
  const tail = tailOf(all, OUTPUT_MAX_LINES - BASH_NOTE_LINES, OUTPUT_MAX_BYTES - BASH_NOTE_BYTES)
  let output = tail.text || '(no output)'
  let outputPath
  // A long output reaches us cut to its head and tail (the addon bounds what it keeps in memory) and
  // already saved in full; a shorter one that still does not fit is saved here.
  const cut = tail.cut || Boolean(result.truncated)
  if (cut) {
    outputPath = result.outputPath ?? (await saveToolOutput(all))
    output = `...output truncated...\n\nFull output saved to: ${outputPath}\n\n${output}`
  }
  if (notes.length > 0) output += `\n\n<shell_metadata>\n${notes.join('\n')}\n</shell_metadata>`
  const preview = all.length > BASH_PREVIEW_CHARS ? `...\n\n${all.slice(-BASH_PREVIEW_CHARS)}` : all
  return {
    title: command,
    output,
    metadata: {
      output: preview || output,
      exit: result.exitCode ?? null,
      truncated: cut,
      ...(outputPath ? { outputPath } : {}),
      host: env.host,
    },
  }
}

/** The last `maxLines` lines of `text` within `maxBytes`. */
function tailOf(text, maxLines, maxBytes) {
  const lines = text.split('\n')
  if (lines.length <= maxLines && Buffer.byteLength(text) <= maxBytes) return { text, cut: false }
  const kept = []
  let bytes = 0
  for (let i = lines.length - 1; i >= 0 && kept.length < maxLines; i--) {
    const size = Buffer.byteLength(lines[i]) + (kept.length > 0 ? 1 : 0)
    if (bytes + size > maxBytes) {
      if (kept.length === 0) kept.unshift(Buffer.from(lines[i]).subarray(-maxBytes).toString('utf8'))
      break
    }
    kept.unshift(lines[i])
    bytes += size
  }
  return { text: kept.join('\n'), cut: true }
}

/** Save a full command output where OpenCode keeps truncated tool output (cleaned up by OpenCode). */
async function saveToolOutput(text) {
  const dir = toolOutputDir()
  // Command output can hold secrets: only the user may read it (OpenCode's own files are 0600 too).
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const file = path.join(dir, `tool_remote_${Date.now().toString(36)}${randomBytes(6).toString('hex')}`)
  await writeFile(file, text, { mode: 0o600, flag: 'wx' })
  return file
}

/** Paths a command never needs approval for. */
const HARMLESS_PATHS = new Set(['/dev/null', '/dev/stdin', '/dev/stdout', '/dev/stderr', '/dev/tty'])
/** Paths of one command sent for checking at most (each outside one is asked about). */
const COMMAND_PATHS_MAX = 32

/**
 * The paths a shell command names that may lie outside its working directory: arguments and
 * redirection targets that are absolute, start with `~`, or climb with `..` (relative ones resolved
 * against `cwd`), the way OpenCode's bash finds external directories (it parses with tree-sitter; this
 * tokenizer covers the same cases: `cd`, file arguments, redirects, `--opt=/path`, `VAR=/path`). A glob
 * stands for its directory. Words with `$` or backquotes cannot be known before they run and are left
 * out, as OpenCode does. The command word itself (`/usr/bin/env`) is not a path the command touches.
 * @param {string} command
 * @param {string|undefined} cwd the command's working directory as the stub takes it
 * @returns {string[]}
 */
export function commandPaths(command, cwd) {
  const found = []
  for (const { text, quoted, role } of shellWords(command)) {
    if (role === 'command' || role === 'heredoc') continue
    if (/[`$]/.test(text) && !quoted.single) continue
    let word = text
    const assignment = /^(?:[A-Za-z_][A-Za-z0-9_]*|--?[A-Za-z0-9][\w-]*)=(.*)$/s.exec(word)
    if (assignment && !quoted.any) word = assignment[1]
    if (!quoted.any) {
      const glob = /[*?[]/.exec(word)
      if (glob) word = word.slice(0, glob.index).replace(/[^/]*$/, '') || (glob.index === 0 ? '' : '.')
    }
    if (!word) continue
    const climbs = word.split('/').includes('..')
    if (!word.startsWith('/') && word !== '~' && !word.startsWith('~/') && !climbs) continue
    if (HARMLESS_PATHS.has(word) || word.startsWith('/dev/fd/')) continue
    const joined = word.startsWith('/') || word.startsWith('~') || !cwd ? word : path.posix.join(cwd, word)
    const resolved = joined.length > 1 ? joined.replace(/\/+$/, '') : joined
    if (!found.includes(resolved)) found.push(resolved)
    if (found.length >= COMMAND_PATHS_MAX) break
  }
  return found
}

/**
 * The words of a shell command line with quotes removed, each with its role: `command` (first word of a
 * simple command, after any assignments), `redirect` (the target of `>`, `<`, `>>`, `&>`, …), `heredoc`
 * (a here-document delimiter or here-string) or `arg`.
 */
function shellWords(line) {
  const words = []
  let i = 0
  let expect = 'command'
  const ops = ['&&', '||', ';;', '|&', ';', '|', '&', '(', ')', '\n']
  while (i < line.length) {
    const c = line[i]
    if (c === ' ' || c === '\t') {
      i++
      continue
    }
    if (c === '#') {
      while (i < line.length && line[i] !== '\n') i++
      continue
    }
    const op = ops.find((o) => line.startsWith(o, i))
    if (op) {
      i += op.length
      expect = 'command'
      continue
    }
    const redirect = /^(?:\d*|&)(?:<<<|<<-?|>>|>\||<>|>&|<&|>|<)/.exec(line.slice(i))
    if (redirect) {
      i += redirect[0].length
      expect = /<</.test(redirect[0]) ? 'heredoc' : /&$/.test(redirect[0]) ? 'fd' : 'redirect'
      continue
    }
    let text = ''
    const quoted = { any: false, single: false }
    while (i < line.length && !/[\s;&|()<>]/.test(line[i])) {
      const ch = line[i]
      if (ch === "'") {
        const end = line.indexOf("'", i + 1)
        const stop = end === -1 ? line.length : end
        text += line.slice(i + 1, stop)
        quoted.any = quoted.single = true
        i = stop + 1
      } else if (ch === '"') {
        i++
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) i++
          text += line[i++]
        }
        quoted.any = true
        i++
      } else if (ch === '\\' && i + 1 < line.length) {
        text += line[i + 1]
        quoted.any = true
        i += 2
      } else {
        text += ch
        i++
      }
    }
    let role = expect === 'command' && /^[A-Za-z_][A-Za-z0-9_]*=/.test(text) ? 'arg' : expect
    if (expect === 'fd') role = /^\d+$|^-$/.test(text) ? 'heredoc' : 'redirect'
    words.push({ text, quoted, role })
    if (!(expect === 'command' && role === 'arg')) expect = 'arg'
  }
  return words
}

// ---------------------------------------------------------------------------------------------------------
// apply_patch

const PATCH_DESCRIPTION = `Use the \`apply_patch\` tool to edit files on the remote host HOST. The patch language is a stripped-down, file-oriented diff format that is easy to parse and safe to apply:

*** Begin Patch
[ one or more file sections ]
*** End Patch

Each file section starts with one of three headers:

*** Add File: <path> - create a new file. Every following line is a + line (the initial contents).
*** Delete File: <path> - remove an existing file. Nothing follows.
*** Update File: <path> - patch an existing file in place (optionally followed by "*** Move to: <new path>" to rename it).

An update has one or more chunks, each starting with "@@" (optionally followed by a line to find first, such as a function header), then the lines: " " context, "-" removed, "+" added.

Example patch:

\`\`\`
*** Begin Patch
*** Add File: hello.txt
+Hello world
*** Update File: src/app.py
*** Move to: src/main.py
@@ def greet():
-print("Hi")
+print("Hello, world!")
*** Delete File: obsolete.txt
*** End Patch
\`\`\`

It is important to remember:

- You must include a header with your intended action (Add/Delete/Update)
- You must prefix new lines with \`+\` even when creating a new file`

function patchTool(env) {
  return {
    description: PATCH_DESCRIPTION.replace('HOST', env.host),
    args: {
      patchText: z.string().describe('The full patch text that describes all changes to be made'),
    },
    async execute(args, ctx) {
      if (!args.patchText) throw new Error('patchText is required')
      const hunks = parsePatchOrFail(args.patchText)
      const host = hostCalls(env, ctx)
      const changes = []
      for (const hunk of hunks) changes.push(await planChange(env, host, hunk))
      const files = changes.map((change) => change.shown)
      await askTool(ctx, 'edit', files, { filepath: files.join(', ') })
      for (const change of changes) await applyChange(host, change)
      const output = `Success. Updated the following files:\n${changes.map((c) => `${c.letter} ${c.shown}`).join('\n')}`
      return {
        title: output,
        output,
        metadata: { files: changes.map(({ letter, shown }) => ({ letter, shown })), host: env.host },
      }
    },
  }
}

function parsePatchOrFail(text) {
  let hunks
  try {
    hunks = parsePatch(text)
  } catch (error) {
    throw new Error(`apply_patch verification failed: ${error}`)
  }
  if (hunks.length > 0) return hunks
  if (text.replace(/\r\n?/g, '\n').trim() === '*** Begin Patch\n*** End Patch') {
    throw new Error('patch rejected: empty patch')
  }
  throw new Error('apply_patch verification failed: no hunks found')
}

/**
 * The hunks of a patch: `{type: 'add', path, contents}`, `{type: 'delete', path}` or
 * `{type: 'update', path, movePath?, chunks: [{context?, oldLines, newLines, endOfFile}]}`.
 */
export function parsePatch(text) {
  const lines = unwrapHeredoc(text.trim()).replace(/\r\n?/g, '\n').split('\n')
  const begin = lines.findIndex((line) => line.trim() === '*** Begin Patch')
  const end = lines.findIndex((line) => line.trim() === '*** End Patch')
  if (begin === -1 || end === -1 || begin >= end)
    throw new Error('Invalid patch format: missing Begin/End markers')
  const hunks = []
  let i = begin + 1
  while (i < end) {
    const header = fileHeader(lines[i])
    if (!header) {
      i++
      continue
    }
    i++
    if (header.type === 'delete') hunks.push(header)
    if (header.type === 'add') {
      const added = []
      for (; i < end && !lines[i].startsWith('***'); i++)
        if (lines[i].startsWith('+')) added.push(lines[i].slice(1))
      hunks.push({ ...header, contents: added.join('\n') })
    }
    if (header.type === 'update') {
      if (lines[i]?.startsWith('*** Move to:'))
        header.movePath = lines[i++].slice('*** Move to:'.length).trim()
      const parsed = updateChunks(lines, i, end)
      hunks.push({ ...header, chunks: parsed.chunks })
      i = parsed.next
    }
  }
  return hunks
}

function fileHeader(line) {
  for (const [prefix, type] of [
    ['*** Add File:', 'add'],
    ['*** Delete File:', 'delete'],
    ['*** Update File:', 'update'],
  ]) {
    if (!line.startsWith(prefix)) continue
    const file = line.slice(prefix.length).trim()
    return file ? { type, path: file } : undefined
  }
  return undefined
}

/** The `@@` chunks of an update, from line `i` to the next `***` line. */
function updateChunks(lines, i, end) {
  const chunks = []
  while (i < end && !lines[i].startsWith('***')) {
    if (!lines[i].startsWith('@@')) {
      i++
      continue
    }
    const chunk = {
      context: lines[i].slice(2).trim() || undefined,
      oldLines: [],
      newLines: [],
      endOfFile: false,
    }
    for (i++; i < end && !lines[i].startsWith('@@'); i++) {
      if (lines[i] === '*** End of File') {
        chunk.endOfFile = true
        i++
        break
      }
      if (lines[i].startsWith('***')) break
      const [mark, rest] = [lines[i][0], lines[i].slice(1)]
      if (mark === ' ' || mark === '-') chunk.oldLines.push(rest)
      if (mark === ' ' || mark === '+') chunk.newLines.push(rest)
    }
    chunks.push(chunk)
  }
  return { chunks, next: i }
}

function unwrapHeredoc(text) {
  const match = /^(?:cat\s+)?<<['"]?(\w+)['"]?\s*\n([\s\S]*?)\n\1\s*$/.exec(text)
  return match ? match[2] : text
}

/** Read what a hunk needs and compute its result; nothing is written yet. */
async function planChange(env, host, hunk) {
  const target = hostPath(env, hunk.path)
  const fail = (message) => new Error(`apply_patch verification failed: ${message}`)
  if (hunk.type === 'add') {
    const content =
      hunk.contents === '' || hunk.contents.endsWith('\n') ? hunk.contents : `${hunk.contents}\n`
    return { letter: 'A', target, content, shown: await shownPatchPath(env, target) }
  }
  const current = await readText(host, target, false).catch(
    unlessRefused((error) => {
      throw fail(hunk.type === 'update' ? `Failed to read file to update: ${target}` : error.message)
    }),
  )
  if (hunk.type === 'delete')
    return { letter: 'D', target, remove: true, shown: await shownPatchPath(env, target) }
  let content
  try {
    content = applyChunks(current.text, hunk.chunks, target)
  } catch (error) {
    throw fail(error.message)
  }
  const movePath = hunk.movePath ? hostPath(env, hunk.movePath) : undefined
  const shown = await shownPatchPath(env, movePath ?? target)
  return { letter: 'M', target: movePath ?? target, content, moveFrom: movePath ? target : undefined, shown }
}

async function shownPatchPath(env, target) {
  return path.isAbsolute(target) ? shown(env, target) : path.posix.normalize(target)
}

async function applyChange(host, change) {
  if (change.remove) return host.call('fs/remove', { path: change.target })
  await host.call('fs/write', { path: change.target, content: change.content, createDirs: true })
  if (change.moveFrom) await host.call('fs/remove', { path: change.moveFrom })
}

/** The new content of a file after an update's chunks (always ending in a newline). */
function applyChunks(text, chunks, file) {
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  const edits = []
  let cursor = 0
  for (const chunk of chunks) {
    if (chunk.context) {
      const at = seekLines(lines, [chunk.context], cursor, false)
      if (at === -1) throw new Error(`Failed to find context '${chunk.context}' in ${file}`)
      cursor = at + 1
    }
    if (chunk.oldLines.length === 0) {
      edits.push([lines.length, 0, chunk.newLines])
      continue
    }
    let [oldLines, newLines] = [chunk.oldLines, chunk.newLines]
    let at = seekLines(lines, oldLines, cursor, chunk.endOfFile)
    if (at === -1 && oldLines.at(-1) === '') {
      oldLines = oldLines.slice(0, -1)
      if (newLines.at(-1) === '') newLines = newLines.slice(0, -1)
      at = seekLines(lines, oldLines, cursor, chunk.endOfFile)
    }
    if (at === -1) throw new Error(`Failed to find expected lines in ${file}:\n${chunk.oldLines.join('\n')}`)
    edits.push([at, oldLines.length, newLines])
    cursor = at + oldLines.length
  }
  for (const [at, count, added] of edits.sort((a, b) => b[0] - a[0])) lines.splice(at, count, ...added)
  return `${lines.join('\n')}\n`
}

/** Where `wanted` occurs in `lines` from `start` (at the end first for an end-of-file chunk), tolerating
 * trailing, then surrounding whitespace, then typographic punctuation differences; -1 when nowhere. */
function seekLines(lines, wanted, start, atEnd) {
  const same = [
    (a, b) => a === b,
    (a, b) => a.trimEnd() === b.trimEnd(),
    (a, b) => a.trim() === b.trim(),
    (a, b) => plainPunctuation(a.trim()) === plainPunctuation(b.trim()),
  ]
  for (const equal of same) {
    const fits = (at) => wanted.every((line, i) => equal(lines[at + i], line))
    const last = lines.length - wanted.length
    if (atEnd && last >= start && fits(last)) return last
    for (let at = start; at <= last; at++) if (fits(at)) return at
  }
  return -1
}

function plainPunctuation(text) {
  return text
    .replace(/[\u2018\u2019\u201A\u201B]/g, "'")
    .replace(/[\u201C\u201D\u201E\u201F]/g, '"')
    .replace(/[\u2010-\u2015]/g, '-')
    .replace(/\u2026/g, '...')
    .replace(/\u00A0/g, ' ')
}
