// The read tool: a file (line-numbered pages), a directory (its entries), an image or PDF (an attachment)
// on the host; OpenCode's own truncated tool output is read locally.
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { DIR_ENTRIES_MAX, OUTPUT_MAX_LINES, READ_FRAME_LINES, READ_LINE_CHARS } from '../limits.mjs'
import { directoryOutput, fileOutput, missingFileMessage } from '../output.mjs'
import { hostPath, isToolOutput, shown } from '../paths.mjs'
import { askTool, hostCalls, unlessRefused } from '../permissions.mjs'

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

export function readTool(env) {
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
      const shownOutput = result.entries
        ? directoryOutput(result, first, limit, env.host)
        : fileOutput(result, first, env.host)
      return { title: await shown(env, result.path), ...shownOutput }
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
  const outcome = await env.api
    .remoteCall(env.place, 'fs/list', { path: path.dirname(file) })
    .catch(() => undefined)
  return missingFileMessage(
    file,
    (outcome?.result?.entries ?? []).map((entry) => entry.name),
  )
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
  return { title: args.filePath, ...fileOutput(result, first, 'local') }
}
