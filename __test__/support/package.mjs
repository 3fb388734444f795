// Installs the package the way a user gets it: `npm pack`, then `npm install <tarball>` into a fresh
// directory. Tests load the plugin, the API and the CLI from there, so they exercise the packed files
// (and the packed stubs), not the work tree.
//
// The package is packed from a staged copy of the files `npm pack` would take, with stub/dist filled by
// support/stub.mjs: the work tree's stub/dist is a release build output that a test must not overwrite.
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { writeTestStubs } from './stub.mjs'

const run = promisify(execFile)
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIG = 64 * 1024 * 1024

/**
 * Pack the package with the test stubs into `dest`.
 * @returns {Promise<{tarball: string, files: string[], arches: string[]}>}
 */
export async function packTestPackage(dest, { env } = {}) {
  const stage = await mkdtemp(path.join(os.tmpdir(), 'ocr-stage-'))
  // What `npm pack` takes from the work tree (without running prepack: the stubs are not there yet).
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: repoRoot,
    maxBuffer: BIG,
  })
  for (const { path: file } of JSON.parse(stdout)[0].files) {
    if (file.startsWith('stub/dist/')) continue
    await mkdir(path.dirname(path.join(stage, file)), { recursive: true })
    await cp(path.join(repoRoot, file), path.join(stage, file), { preserveTimestamps: true })
  }
  const arches = await writeTestStubs(repoRoot, path.join(stage, 'stub', 'dist'))
  // prepack's own check, for the arches this test package carries; then pack without it.
  await run(
    process.execPath,
    [path.join(repoRoot, 'scripts', 'check-stubs.mjs'), ...arches.flatMap((a) => ['--arch', a])],
    {
      cwd: stage,
    },
  )
  const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], {
    cwd: stage,
    env: env ?? process.env,
    maxBuffer: BIG,
  })
  await rm(stage, { recursive: true, force: true })
  const info = JSON.parse(packed.stdout)[0]
  return { tarball: path.join(dest, info.filename), files: info.files.map((f) => f.path), arches }
}

/**
 * Pack the package (with its stubs) and install the tarball into a new temp directory.
 * @returns {Promise<{dir: string, packageDir: string, tarball: string, api: string, bin: string, stubDir: string}>}
 *   `packageDir` is the installed `node_modules/opencode-remote`, usable as an OpenCode plugin spec
 *   (`file://…`); `api` its api.js, `bin` its CLI, `stubDir` its stub/dist.
 */
export async function installPackedPackage() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-pkg-'))
  const { tarball } = await packTestPackage(dir)
  const app = path.join(dir, 'app')
  await mkdir(app)
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
    cwd: app,
    maxBuffer: BIG,
  })
  const packageDir = path.join(app, 'node_modules', 'opencode-remote')
  return {
    dir,
    tarball,
    packageDir,
    api: path.join(packageDir, 'api.js'),
    bin: path.join(packageDir, 'bin', 'opencode-remote.js'),
    stubDir: path.join(packageDir, 'stub', 'dist'),
  }
}
