// The apply_patch tool: a patch of adds, deletes, updates and moves on the host. Every file is read and
// every change computed (patch.mjs) before the first one is written.
import path from 'node:path'
import { z } from 'zod'
import { applyChunks, parsePatchOrFail } from '../patch.mjs'
import { hostPath, shown } from '../paths.mjs'
import { askTool, hostCalls, unlessRefused } from '../permissions.mjs'
import { readText } from '../read-text.mjs'

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

export function patchTool(env) {
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
