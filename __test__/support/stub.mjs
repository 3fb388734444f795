// Where the tests find the stub for this machine's arch: the static dist build (stub/build.sh) when there
// is one, else a dev build of the stub crate copied under the name the addon looks for.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { repoRoot } from './package.mjs'

const run = promisify(execFile)

/** @returns {Promise<string>} a directory to use as OPENCODE_REMOTE_STUB_DIR */
export async function stubBinaryDir() {
  const version = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')).version
  const name = `opencode-remote-stub-${version}-x86_64-linux`
  const dist = path.join(repoRoot, 'stub', 'dist')
  if (existsSync(path.join(dist, name))) return dist
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-stub-'))
  await run('cargo', ['build', '-p', 'opencode-remote-stub'], { cwd: repoRoot })
  await copyFile(path.join(repoRoot, 'target', 'debug', 'opencode-remote-stub'), path.join(dir, name))
  return dir
}
