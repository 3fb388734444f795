// Permissions in remote tools mode (plugin/remote/permissions.mjs), with a scripted addon and ToolContext:
// a stub permission request becomes one external_directory prompt, its answer goes back to the stub, and
// the stub's errors reach the model in the stub's own words.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { hostCalls, hostError, promptLog } from '../../plugin/remote/permissions.mjs'

const permission = { requestId: 'p1', patterns: ['/etc/*'], path: '/etc/hosts', operation: 'read' }

/** An env whose addon answers `fs/read` with a permission request first, then with the file. */
function scripted() {
  const sent = []
  const replies = []
  const env = {
    host: 'web1',
    place: { host: 'web1' },
    prompts: promptLog(),
    api: {
      async remoteCall(place, operation, body) {
        sent.push(body)
        return body.grant ? { result: { text: 'hosts' } } : { permission }
      },
      async remoteReply(place, reply) {
        replies.push(reply)
        return { grant: reply.reply === 'once' ? 'g1' : undefined }
      },
    },
  }
  return { env, sent, replies }
}

describe('hostCalls', () => {
  test('asks once for a refused path, answers the stub and retries with the grant', async () => {
    const { env, sent, replies } = scripted()
    const asks = []
    const ctx = { sessionID: 's', callID: 'c', ask: async (request) => asks.push(request) }
    assert.deepEqual(await hostCalls(env, ctx).call('fs/read', { path: '/etc/hosts' }), { text: 'hosts' })
    assert.equal(asks.length, 1)
    assert.equal(asks[0].permission, 'external_directory')
    assert.deepEqual(asks[0].patterns, ['/etc/*'])
    assert.deepEqual(asks[0].always, ['/etc/*'])
    assert.deepEqual(asks[0].metadata, {
      path: '/etc/hosts',
      filepath: '/etc/hosts',
      parentDir: '/etc',
      operation: 'read',
      patterns: ['/etc/*'],
      host: 'web1',
    })
    assert.deepEqual(replies, [{ requestId: 'p1', reply: 'once' }])
    assert.deepEqual(sent, [{ path: '/etc/hosts' }, { path: '/etc/hosts', grant: 'g1' }])
  })

  test('a refused prompt rejects the stub request and names what was refused', async () => {
    const { env, replies } = scripted()
    const ctx = {
      sessionID: 's',
      callID: 'c',
      ask: async () => Promise.reject(new Error('The user rejected')),
    }
    await assert.rejects(hostCalls(env, ctx).call('fs/read', { path: '/etc/hosts' }), {
      message: 'The user rejected (read of /etc/hosts on host web1, outside the workspace root)',
    })
    assert.deepEqual(replies, [{ requestId: 'p1', reply: 'reject' }])
  })
})

describe('promptLog', () => {
  const asked = (id, patterns) => ({
    type: 'permission.asked',
    properties: { id, permission: 'external_directory', sessionID: 's', tool: { callID: 'c' }, patterns },
  })
  const ctx = { sessionID: 's', callID: 'c' }

  test('reads the answer of the prompt this call raised', async () => {
    const log = promptLog()
    log.observe(asked('r1', ['/a/*']))
    log.observe({ type: 'permission.replied', properties: { requestID: 'r1', reply: 'always' } })
    assert.equal(await log.answerFor(ctx, ['/a/*']), 'always')
  })

  test('without a prompt (a rule allowed it) the answer is once', async () => {
    assert.equal(await promptLog().answerFor(ctx, ['/a/*']), 'once')
  })
})

test('hostError keeps only the stub words of a remote run failure', () => {
  const error = Object.assign(new Error("The remote run on 'web1' failed: no such file: /x."), {
    code: 'REMOTE_RUN_FAILED',
  })
  const mapped = hostError(error)
  assert.equal(mapped.message, 'no such file: /x')
  assert.equal(mapped.code, 'REMOTE_RUN_FAILED')
  const other = Object.assign(new Error('boom'), { code: 'AUTH_FAILED' })
  assert.equal(hostError(other), other)
})
