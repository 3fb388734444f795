// Installs the package the way a user gets it: `npm pack`, then `npm install <tarball>` into a fresh
// directory. Tests load the plugin from there, so they exercise the packed files, not the work tree.
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * Pack the repository and install the tarball into a new temp directory.
 * @returns {Promise<{dir: string, packageDir: string, tarball: string}>} `packageDir` is the installed
 *   `node_modules/opencode-remote`, usable as an OpenCode plugin spec (`file://…`).
 */
export async function installPackedPackage() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-pkg-'))
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], {
    cwd: repoRoot,
    maxBuffer: 64 * 1024 * 1024,
  })
  const tarball = path.join(dir, JSON.parse(stdout)[0].filename)
  const app = path.join(dir, 'app')
  await mkdir(app)
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
    cwd: app,
    maxBuffer: 64 * 1024 * 1024,
  })
  return { dir, tarball, packageDir: path.join(app, 'node_modules', 'opencode-remote') }
}
