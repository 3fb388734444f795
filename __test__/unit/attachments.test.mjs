// `@file` attachments in a workspace session (plugin/remote/attachments.mjs): the parts OpenCode expanded
// with its local read tool get the host's text instead, for project files only; a path the stub refuses is
// refused, never approved unasked; nothing throws.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { attachFromHost } from '../../plugin/remote/attachments.mjs'

const env = { host: 'web1', projectDir: '/home/me/proj' }
const input = { sessionID: 'ses_1', messageID: 'msg_1', agent: 'build' }
const called = (args) => ({
  type: 'text',
  synthetic: true,
  text: `Called the Read tool with the following input: ${JSON.stringify(args)}`,
})
const synthetic = (text) => ({ type: 'text', synthetic: true, text })
const fileUrl = (p) => ({ type: 'file', mime: 'text/plain', url: `file://${p}`, filename: p })

/** A remote read tool that answers from `files` (host paths as the model names them) and records its calls. */
function hostRead(files) {
  const calls = []
  return {
    calls,
    async execute(args, ctx) {
      calls.push({ args, ctx })
      await ctx.ask({ permission: 'read', patterns: [args.filePath] })
      if (args.filePath.includes('link-out')) {
        await ctx.ask({ permission: 'external_directory', patterns: ['/etc/*'] })
      }
      const text = files[args.filePath]
      if (text === undefined) throw new Error(`File not found: ${args.filePath}`)
      return { title: args.filePath, output: `<content>\n1: ${text}\n</content>` }
    },
  }
}

describe('attachFromHost', () => {
  test('a project file attached in the TUI carries the host’s text, with the same offset and limit', async () => {
    const read = hostRead({ '/home/me/proj/src/a.ts': 'HOST' })
    const args = { filePath: '/home/me/proj/src/a.ts', offset: 3, limit: 2 }
    const parts = [
      { type: 'text', text: 'look at this' },
      called(args),
      synthetic('<content>\n1: LOCAL\n</content>'),
      fileUrl(args.filePath),
    ]
    await attachFromHost(env, read, input, parts)
    assert.equal(parts[2].text, '<content>\n1: HOST\n</content>')
    assert.deepEqual(read.calls[0].args, args)
    assert.equal(read.calls[0].ctx.sessionID, 'ses_1')
    assert.equal(parts[0].text, 'look at this', 'the user’s own text is untouched')
    assert.equal(parts[3].url, `file://${args.filePath}`)
  })

  test('a project file missing on the host says so, naming the host, instead of sending the local text', async () => {
    const read = hostRead({})
    const parts = [called({ filePath: '/home/me/proj/gone.txt' }), synthetic('LOCAL SECRET')]
    await attachFromHost(env, read, input, parts)
    assert.match(parts[1].text, /^Read tool failed to read \/home\/me\/proj\/gone\.txt on host web1/)
    assert.match(parts[1].text, /File not found/)
    assert.doesNotMatch(parts[1].text, /LOCAL/)
  })

  test('a file that exists only on the host is read there when the local read failed', async () => {
    const read = hostRead({ '/home/me/proj/host-only.txt': 'HOST ONLY' })
    const parts = [
      synthetic(
        'Read tool failed to read /home/me/proj/host-only.txt with the following error: ENOENT: no such file',
      ),
    ]
    await attachFromHost(env, read, input, parts)
    assert.match(parts[0].text, /^Called the Read tool with the following input: /)
    assert.match(parts[0].text, /HOST ONLY/)
  })

  test('files outside the project, user text that looks like a call, and images are left alone', async () => {
    const read = hostRead({ '/etc/hosts': 'HOST' })
    const outside = [called({ filePath: '/etc/hosts' }), synthetic('LOCAL hosts')]
    const typed = [
      { type: 'text', text: called({ filePath: '/home/me/proj/a' }).text },
      { type: 'text', text: 'x' },
    ]
    await attachFromHost(env, read, input, outside)
    await attachFromHost(env, read, input, typed)
    assert.equal(outside[1].text, 'LOCAL hosts')
    assert.equal(typed[1].text, 'x', 'only OpenCode’s synthetic parts are rewritten')
    assert.equal(read.calls.length, 0)

    const image = {
      async execute() {
        return { output: 'Image read successfully', attachments: [{ type: 'file' }] }
      },
    }
    const parts = [called({ filePath: '/home/me/proj/a.png' }), synthetic('Image read successfully')]
    await attachFromHost(env, image, input, parts)
    assert.equal(parts[1].text, 'Image read successfully')
  })

  test('a link out of the root is refused, not approved without asking', async () => {
    const read = hostRead({ '/home/me/proj/link-out': 'ETC' })
    const parts = [called({ filePath: '/home/me/proj/link-out' }), synthetic('LOCAL')]
    await attachFromHost(env, read, input, parts)
    assert.match(parts[1].text, /not attached: it is outside the workspace root/)
  })
})
