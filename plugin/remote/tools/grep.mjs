// The grep tool: lines matching a regex in files on the host; OpenCode's own truncated tool output is
// searched locally.
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { SEARCH_LIMIT } from '../limits.mjs'
import { grepOutput } from '../output.mjs'
import { hostPath, isToolOutput } from '../paths.mjs'
import { askTool, hostCalls } from '../permissions.mjs'

const GREP_DESCRIPTION = `- Fast content search tool on the remote host HOST that works with any codebase size
- Searches file contents using regular expressions
- Supports full regex syntax (eg. "log.*Error", "function\\s+\\w+", etc.)
- Filter files by pattern with the include parameter (eg. "*.js", "*.{ts,tsx}")
- Returns file paths and line numbers with matching lines
- Use this tool when you need to find files containing specific patterns
- If you need to identify/count the number of matches within files, use the Bash tool with \`rg\` (ripgrep) directly if the host has it. Do NOT use \`grep\`.
- When you are doing an open-ended search that may require multiple rounds of globbing and grepping, use the Task tool instead`

export function grepTool(env) {
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
