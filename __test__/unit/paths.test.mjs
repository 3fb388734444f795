// Paths in remote tools mode (plugin/remote/paths.mjs): the local project directory stands for the
// workspace root; titles show paths relative to the root on the host.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { hostPath, shown } from '../../plugin/remote/paths.mjs'

describe('hostPath', () => {
  const env = { projectDir: '/home/me/proj' }

  test('the local project directory and paths below it become root-relative', () => {
    assert.equal(hostPath(env, '/home/me/proj'), '.')
    assert.equal(hostPath(env, '/home/me/proj/src/a.rs'), 'src/a.rs')
    assert.equal(hostPath({ projectDir: '/home/me/proj/' }, '/home/me/proj/src'), 'src')
  })

  test('other paths pass as they are', () => {
    assert.equal(hostPath(env, '/home/me/project2/a'), '/home/me/project2/a')
    assert.equal(hostPath(env, '/etc/hosts'), '/etc/hosts')
    assert.equal(hostPath(env, 'src/a.rs'), 'src/a.rs')
    assert.equal(hostPath(env, undefined), undefined)
    assert.equal(hostPath(env, ''), '')
  })
})

describe('shown', () => {
  const env = { root: async () => '/srv/ws' }

  test('a path inside the root is shown relative to it', async () => {
    assert.equal(await shown(env, '/srv/ws'), '.')
    assert.equal(await shown(env, '/srv/ws/src/a.rs'), 'src/a.rs')
  })

  test('other paths, relative paths and an unknown root show the path as it is', async () => {
    assert.equal(await shown(env, '/srv/ws2/a'), '/srv/ws2/a')
    assert.equal(await shown(env, 'src/a.rs'), 'src/a.rs')
    const down = { root: async () => Promise.reject(new Error('host down')) }
    assert.equal(await shown(down, '/srv/ws/a'), '/srv/ws/a')
  })
})
