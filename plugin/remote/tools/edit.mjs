// The edit tool: an exact string replacement in a file on the host (the replacement itself is
// edit-logic.mjs).
import { z } from 'zod'
import { replaceIn } from '../edit-logic.mjs'
import { lineCounts } from '../output.mjs'
import { hostPath, shown } from '../paths.mjs'
import { askTool, hostCalls } from '../permissions.mjs'
import { readText } from '../read-text.mjs'

const EDIT_DESCRIPTION = `Performs exact string replacements in files on the remote host HOST.

Usage:
- You must use your \`Read\` tool at least once in the conversation before editing. This tool will error if you attempt an edit without reading the file.
- When editing text from Read tool output, ensure you preserve the exact indentation (tabs/spaces) as it appears AFTER the line number prefix. The line number prefix format is: line number + colon + space (e.g., \`1: \`). Everything after that space is the actual file content to match. Never include any part of the line number prefix in the oldString or newString.
- ALWAYS prefer editing existing files in the codebase. NEVER write new files unless explicitly required.
- Only use emojis if the user explicitly requests it. Avoid adding emojis to files unless asked.
- The edit will FAIL if \`oldString\` is not found in the file with an error "oldString not found in content".
- The edit will FAIL if \`oldString\` is found multiple times in the file with an error "Found multiple matches for oldString. Provide more surrounding lines in oldString to identify the correct match." Either provide a larger string with more surrounding context to make it unique or use \`replaceAll\` to change every instance of \`oldString\`.
- Use \`replaceAll\` for replacing and renaming strings across the file. This parameter is useful if you want to rename a variable for instance.`

export function editTool(env) {
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
