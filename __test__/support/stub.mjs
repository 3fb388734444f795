// Where the tests find the stub for this machine's arch: the static dist build (stub/build.sh) when it
// is newer than every stub and protocol source, else a dev build of the stub crate copied under the name
// the addon looks for (a stale dist binary would test yesterday's stub).
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { copyFile, mkdtemp, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { repoRoot } from './package.mjs'

const run = promisify(execFile)

/** The newest modification time of the files under `dir`, in ms. */
function newestMtime(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    newest = Math.max(newest, statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs)
  }
  return newest
}

/** @returns {Promise<string>} a directory to use as OPENCODE_REMOTE_STUB_DIR */
export async function stubBinaryDir() {
  const version = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')).version
  const name = `opencode-remote-stub-${version}-x86_64-linux`
  const dist = path.join(repoRoot, 'stub', 'dist')
  const built = path.join(dist, name)
  const sources = ['stub/src', 'stub/Cargo.toml', 'protocol/src'].map((p) => path.join(repoRoot, p))
  const sourcesChanged = Math.max(
    ...sources.map((p) => (statSync(p).isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)),
  )
  if (existsSync(built) && statSync(built).mtimeMs > sourcesChanged) return dist
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-stub-'))
  await run('cargo', ['build', '-p', 'opencode-remote-stub'], { cwd: repoRoot })
  await copyFile(path.join(repoRoot, 'target', 'debug', 'opencode-remote-stub'), path.join(dir, name))
  return dir
}
