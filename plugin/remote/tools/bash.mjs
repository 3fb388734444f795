// The bash tool: a command on the host in the workspace root (or `workdir`), its output's tail shown and
// the full output saved locally when it is cut; paths it names outside the root are asked about first.
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { commandPaths } from '../command-paths.mjs'
import { BASH_TIMEOUT_MS } from '../limits.mjs'
import { bashOutput } from '../output.mjs'
import { hostPath, toolOutputDir } from '../paths.mjs'
import { askTool, hostCalls } from '../permissions.mjs'

const BASH_DESCRIPTION = `Executes a given bash command on the remote host HOST with optional timeout.

All commands run in the workspace root on that host by default. Use the \`workdir\` parameter if you need to run a command in a different directory. AVOID using \`cd <directory> && <command>\` patterns - use \`workdir\` instead.

IMPORTANT: This tool is for terminal operations like git, npm, docker, etc. DO NOT use it for file operations (reading, writing, editing, searching, finding files) - use the specialized tools for this instead.

Usage notes:
  - The command argument is required.
  - You can specify an optional timeout in milliseconds. If not specified, commands will time out after 120000ms.
  - Always quote file paths that contain spaces with double quotes.
  - If the output exceeds 2000 lines or 51200 bytes, it will be truncated and the full output will be written to a file. You can use Read with offset/limit to read specific sections or Grep to search the full content.
  - Avoid using Bash with the \`find\`, \`grep\`, \`cat\`, \`head\`, \`tail\`, \`sed\`, \`awk\`, or \`echo\` commands, unless explicitly instructed or when these commands are truly necessary for the task. Prefer the dedicated tools: Glob (files), Grep (content), Read, Edit, Write.
  - If the commands are independent, make multiple bash tool calls in a single message; if they depend on each other, chain them with '&&' in one call.
  - Only commit, amend, push, or create PRs when explicitly requested.`

export function bashTool(env) {
  return {
    description: BASH_DESCRIPTION.replace('HOST', env.host),
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
      return bashOutput({ command: args.command, timeoutMs, result, host: env.host }, saveToolOutput)
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

/** Save a full command output where OpenCode keeps truncated tool output (cleaned up by OpenCode). */
async function saveToolOutput(text) {
  const dir = toolOutputDir()
  // Command output can hold secrets: only the user may read it (OpenCode's own files are 0600 too).
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const file = path.join(dir, `tool_remote_${Date.now().toString(36)}${randomBytes(6).toString('hex')}`)
  await writeFile(file, text, { mode: 0o600, flag: 'wx' })
  return file
}
