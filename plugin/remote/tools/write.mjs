// The write tool: a whole file on the host, its directories created.
import { z } from 'zod'
import { hostPath, shown } from '../paths.mjs'
import { askTool, hostCalls } from '../permissions.mjs'

const WRITE_DESCRIPTION = `Writes a file on the remote host HOST.

Usage:
- This tool will overwrite the existing file if there is one at the provided path.
- If this is an existing file, you MUST use the Read tool first to read the file's contents.
- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.
- NEVER proactively create documentation files (*.md) or README files. Only create documentation files if explicitly requested by the User.
- Only use emojis if the user explicitly requests it. Avoid writing emojis to files unless asked.`

export function writeTool(env) {
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
