// Differential test of the stub's OpenCode routes (`/v1/workspaces/{ws}/oc<path>`, issue 12): the real
// `opencode serve` (1.18.33) and the stub serve the same trees, a git repository and a plain directory, and
// every file, find and vcs route must answer the same JSON (status and body), except for the documented
// differences:
// - a path outside the root: OpenCode dies (500 UnknownError), the stub refuses it (400 BadRequest);
// - find.text: OpenCode's ripgrep order is unspecified, so matches are compared as sets;
// - find.files: OpenCode ranks with its native fuzzy finder (fff), which also lists loose matches; the stub
//   must put the same best match first and list only real (subsequence) matches.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { after, before, describe, test } from 'node:test'

import { makeOpencodeHome, repoRoot, startServe } from './harness/opencode.mjs'
import { exec, onExit } from './harness/proc.mjs'

const TOKEN = 'oc-routes-test-token-0123456789'

let tmp
let oc
let stub
let repo
let plain

/** Start the dev build of the stub on its Unix socket with a fresh home; resolves once it listens. */
async function startStub(home, userHome) {
  await exec('cargo', ['build', '-q', '-p', 'opencode-remote-stub'], { cwd: repoRoot, timeoutMs: 600_000 })
  await mkdir(path.join(home, 'run'), { recursive: true })
  await mkdir(userHome, { recursive: true })
  await writeFile(path.join(home, 'run', 'stub.token'), TOKEN + '\n', { mode: 0o600 })
  const bin = path.join(repoRoot, 'target', 'debug', 'opencode-remote-stub')
  const child = spawn(bin, ['serve', '--home', home], {
    env: { PATH: process.env.PATH, HOME: userHome },
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  const unregister = onExit(() => child.kill('SIGKILL'))
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`stub exited with ${code}`)))
  })
  const { socket } = JSON.parse(line)
  return {
    socket,
    stop() {
      unregister()
      child.kill('SIGKILL')
    },
  }
}

/** One request to the stub; the body is parsed when it is JSON. */
function stubCall(method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      {
        socketPath: stub.socket,
        path: p,
        method,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
        },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (d) => (text += d))
        res.on('end', () => resolve(answer(res.statusCode, res.headers['content-type'], text)))
      },
    )
    req.on('error', reject)
    req.end(data)
  })
}

async function ocCall(method, p, body) {
  const res = await fetch(oc.url + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  })
  return answer(res.status, res.headers.get('content-type'), await res.text())
}

function answer(status, type, text) {
  const body = (type ?? '').includes('json') && text ? JSON.parse(text) : text
  return { status, type: (type ?? '').split(';')[0], body }
}

/** The same OpenCode route from both: OpenCode's for `dir`, the stub's for workspace `ws`. */
async function both(ws, dir, p, method = 'GET', body) {
  const sep = p.includes('?') ? '&' : '?'
  const ours = await stubCall(method, `/v1/workspaces/${ws}/oc${p}`, body)
  const theirs = await ocCall(method, `${p}${sep}directory=${encodeURIComponent(dir)}`, body)
  return { ours, theirs }
}

async function same(ws, dir, p, method, body) {
  const { ours, theirs } = await both(ws, dir, p, method, body)
  assert.deepEqual(ours, theirs, `${method ?? 'GET'} ${p} in ${ws}`)
  return ours
}

const git = (cwd, ...args) =>
  exec('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { cwd })

/** A repository with commits on main and on a feature branch, and every kind of uncommitted change. */
async function makeRepo(dir) {
  const put = async (rel, content) => {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true })
    await writeFile(path.join(dir, rel), content)
  }
  await put('.gitignore', 'node_modules\n*.log\n')
  await put('.ignore', 'drafts/\n')
  await put('README.md', 'hello world\nfoo bar\n')
  await put('src/main.rs', 'fn main() {\n    println!("hello");\n}\n')
  await put('src/util/helper.rs', 'pub fn helper() {}\n')
  await put('src/Ünïcode name.txt', '  spaced  \n\n')
  await put('docs/img.png', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'))
  await put('docs/bin.dat', Buffer.from([0x61, 0, 0x62]))
  await put('docs/latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]))
  await put('node_modules/x/index.js', 'hello\n')
  await put('drafts/note.md', 'hello draft\n')
  await put('debug.log', 'hello log\n')
  for (const name of ['a_b.txt', 'a-b.txt', 'A.txt', 'a.txt', 'B10.txt', 'b2.txt'])
    await put(`sorted/${name}`, name)
  await mkdir(path.join(dir, 'empty'))
  await symlink('src/main.rs', path.join(dir, 'link.rs'))
  await git(dir, 'add', '-A')
  await git(dir, 'commit', '-qm', 'fixture')
  await git(dir, 'checkout', '-q', '-b', 'feat')
  await put('feature.txt', 'one\ntwo\n')
  await git(dir, 'add', '-A')
  await git(dir, 'commit', '-qm', 'feature')
  await put('README.md', 'hello world\nfoo bar\nmore\n')
  await rm(path.join(dir, 'src/util/helper.rs'))
  await put('src/new.txt', 'new\nlines')
  await put('ubin.dat', Buffer.from([0, 1, 2]))
  await put('staged.txt', 'staged\n')
  await git(dir, 'add', 'staged.txt')
}

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ocr-ocroutes-'))
  const home = await makeOpencodeHome(path.join(tmp, 'oc'), { llm: 'http://127.0.0.1:9/v1' })
  repo = home.projectDir
  await makeRepo(repo)
  plain = path.join(tmp, 'plain')
  await mkdir(path.join(plain, 'sub'), { recursive: true })
  await writeFile(path.join(plain, 'a.txt'), 'plain hello\n')
  stub = await startStub(path.join(tmp, 'stub-home'), path.join(tmp, 'stub-user'))
  for (const [id, root] of [
    ['repo', repo],
    ['plain', plain],
  ]) {
    const r = await stubCall('POST', '/v1/workspaces', { id, root })
    assert.equal(r.status, 200, JSON.stringify(r.body))
  }
  oc = await startServe(home.env, repo)
})

after(async () => {
  stub?.stop()
  await oc?.stop()
  if (tmp) await rm(tmp, { recursive: true, force: true })
})

describe('the stub answers OpenCode routes as opencode serve does', () => {
  test('file.list, file.read and file.status', async () => {
    for (const p of [
      '/file?path=',
      '/file?path=src',
      '/file?path=sorted',
      '/file?path=docs',
      '/file?path=drafts',
      `/file?path=${encodeURIComponent(path.join(repo, 'src'))}`,
      '/file/content?path=README.md',
      '/file/content?path=src%2F%C3%9Cn%C3%AFcode%20name.txt',
      '/file/content?path=docs/img.png',
      '/file/content?path=docs/bin.dat',
      '/file/content?path=missing.txt',
      '/file/content?path=link.rs',
      '/file/status',
      '/file/content',
      '/file',
    ])
      await same('repo', repo, p)
    // Text that is not UTF-8: OpenCode's decoder throws (500); the stub answers it as binary.
    const latin1 = await both('repo', repo, '/file/content?path=docs/latin1.txt')
    assert.deepEqual([latin1.theirs.status, latin1.theirs.body.name], [500, 'UnknownError'])
    assert.deepEqual(latin1.ours.body, {
      type: 'binary',
      content: 'Y2Fm6Qo=',
      encoding: 'base64',
      mimeType: 'text/plain',
    })
    for (const p of ['/file?path=nope', '/file?path=README.md', '/file/content?path=src']) {
      const { ours, theirs } = await both('repo', repo, p)
      assert.deepEqual([ours.status, ours.body.name], [theirs.status, theirs.body.name], p)
    }
  })

  test('a path outside the root: OpenCode fails (500), the stub refuses it (400)', async () => {
    for (const p of [
      '/file/content?path=../x',
      '/file?path=..',
      `/file/content?path=${encodeURIComponent('/etc/hostname')}`,
    ]) {
      const { ours, theirs } = await both('repo', repo, p)
      assert.deepEqual([theirs.status, theirs.body.name], [500, 'UnknownError'], p)
      assert.deepEqual([ours.status, ours.body.name, ours.body.data.kind], [400, 'BadRequest', 'Query'], p)
    }
  })

  test('find.text finds the same lines', async () => {
    const key = (m) => `${m.path.text}:${m.line_number}`
    for (const pattern of ['hello', 'fo+', 'nothing-matches-this']) {
      const { ours, theirs } = await both('repo', repo, `/find?pattern=${encodeURIComponent(pattern)}`)
      assert.equal(ours.status, theirs.status)
      const sort = (list) => [...list].sort((a, b) => key(a).localeCompare(key(b)))
      assert.deepEqual(sort(ours.body), sort(theirs.body), pattern)
    }
  })

  test('find.files puts the same best match first', async () => {
    for (const q of ['main', 'readme', 'feature', 'mainrs', 'latin', 'src/main']) {
      const { ours, theirs } = await both('repo', repo, `/find/file?query=${encodeURIComponent(q)}`)
      assert.equal(ours.status, 200)
      assert.equal(ours.body[0], theirs.body[0], `${q}: ours ${ours.body} theirs ${theirs.body}`)
    }
    const { ours } = await both('repo', repo, '/find/file?query=src&type=directory')
    assert.deepEqual(ours.body, ['src/'])
    // Without a query every file and directory holding one, shortest first (fff orders paths of the same
    // length by its own index, the stub by localeCompare).
    for (const p of ['/find/file?query=&limit=200', '/find/file?query=&type=file&limit=200']) {
      const { ours, theirs } = await both('repo', repo, p)
      assert.deepEqual([...ours.body].sort(), [...theirs.body].sort(), p)
      assert.deepEqual(
        ours.body.map((f) => f.length),
        theirs.body.map((f) => f.length),
        p,
      )
    }
    for (const p of [
      '/find/file?query=x&limit=0',
      '/find/file?query=x&type=bogus',
      '/find/file',
      '/find/symbol?query=main',
    ])
      await same('repo', repo, p)
  })

  test('vcs info, status, diffs and apply in a git repository', async () => {
    for (const p of [
      '/vcs',
      '/vcs/status',
      '/vcs/diff?mode=git',
      '/vcs/diff?mode=git&context=1',
      '/vcs/diff?mode=branch',
      '/vcs/diff/raw',
      '/vcs/diff',
      '/vcs/diff?mode=other',
    ])
      await same('repo', repo, p)
    await same('repo', repo, '/vcs/apply', 'POST', { patch: 'not a patch' })
    await same('repo', repo, '/vcs/apply', 'POST', {})
    const patch =
      'diff --git a/applied.txt b/applied.txt\nnew file mode 100644\n--- /dev/null\n+++ b/applied.txt\n@@ -0,0 +1 @@\n+applied\n'
    for (const call of [ocCall, stubCall]) {
      const p =
        call === ocCall
          ? `/vcs/apply?directory=${encodeURIComponent(repo)}`
          : '/v1/workspaces/repo/oc/vcs/apply'
      const r = await call('POST', p, { patch })
      assert.deepEqual([r.status, r.body], [200, { applied: true }], call.name)
      await rm(path.join(repo, 'applied.txt'))
    }
  })

  test('vcs and file routes outside git', async () => {
    for (const p of [
      '/vcs',
      '/vcs/status',
      '/vcs/diff?mode=git',
      '/vcs/diff?mode=branch',
      '/vcs/diff/raw',
      '/file?path=',
      '/find/file?query=',
    ])
      await same('plain', plain, p)
    await same('plain', plain, '/vcs/apply', 'POST', { patch: 'x' })
  })
})
