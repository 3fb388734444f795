// The glob tool: files on the host whose paths match a pattern.
import { z } from 'zod'
import { SEARCH_LIMIT } from '../limits.mjs'
import { globOutput } from '../output.mjs'
import { hostPath, shown } from '../paths.mjs'
import { askTool, hostCalls, unlessRefused } from '../permissions.mjs'

const GLOB_DESCRIPTION = `- Fast file pattern matching tool on the remote host HOST that works with any codebase size
- Supports glob patterns like "**/*.js" or "src/**/*.ts"
- Returns matching file paths sorted by modification time
- Use this tool when you need to find files by name patterns
- When you are doing an open-ended search that may require multiple rounds of globbing and grepping, use the Task tool instead
- You have the capability to call multiple tools in a single response. It is always better to speculatively perform multiple searches as a batch that are potentially useful.`

export function globTool(env) {
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
      return {
        title: await shown(env, found.path),
        output: globOutput(found),
        metadata: { count: found.files.length, truncated: found.truncated, host: env.host },
      }
    },
  }
}
