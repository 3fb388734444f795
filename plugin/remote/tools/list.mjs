// The list tool: a directory on the host as a tree (OpenCode's former ls tool).
import { z } from 'zod'
import { SEARCH_LIMIT } from '../limits.mjs'
import { renderTree } from '../output.mjs'
import { hostPath, shown } from '../paths.mjs'
import { askTool, hostCalls } from '../permissions.mjs'

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

const LIST_DESCRIPTION = `Lists files and directories on the remote host HOST as a tree. The path parameter must be absolute; omit it to use the workspace root. You can optionally provide an array of glob patterns to ignore with the ignore parameter. You should generally prefer the Glob and Grep tools, if you know which directories to search.`

export function listTool(env) {
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
