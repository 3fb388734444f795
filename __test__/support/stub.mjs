// The stubs the test package ships, as a user's package does (stub/dist with SHA256SUMS): the release
// stubs in stub/dist when they are complete and newer than every stub and protocol source, else a dev build
// of the stub crate for this machine's arch, under the name the addon looks for (a stale dist binary would
// test yesterday's stub). Written into the staged package, never into the work tree's stub/dist.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { SHIPPED_ARCHES, SUMS, stubName, stubProblems } from '../../scripts/check-stubs.mjs'

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

/** This machine's arch as the stub names it (`uname -m`). */
export const hostArch = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7' }[process.arch] ?? process.arch

/**
 * Fill `dist` (a staged package's stub/dist) with stubs and their SHA256SUMS.
 * @returns {Promise<string[]>} the arches it holds
 */
export async function writeTestStubs(repoRoot, dist) {
  const version = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')).version
  const release = path.join(repoRoot, 'stub', 'dist')
  const sources = ['stub/src', 'stub/Cargo.toml', 'protocol/src'].map((p) => path.join(repoRoot, p))
  const sourcesChanged = Math.max(
    ...sources.map((p) => (statSync(p).isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)),
  )
  await mkdir(dist, { recursive: true })
  const releaseStub = path.join(release, stubName(version, hostArch))
  if (
    stubProblems(release, version, SHIPPED_ARCHES).length === 0 &&
    statSync(releaseStub).mtimeMs > sourcesChanged
  ) {
    for (const arch of SHIPPED_ARCHES) {
      await copyFile(path.join(release, stubName(version, arch)), path.join(dist, stubName(version, arch)))
    }
    await copyFile(path.join(release, SUMS), path.join(dist, SUMS))
    return SHIPPED_ARCHES
  }
  await run('cargo', ['build', '-p', 'opencode-remote-stub'], { cwd: repoRoot })
  const name = stubName(version, hostArch)
  await copyFile(path.join(repoRoot, 'target', 'debug', 'opencode-remote-stub'), path.join(dist, name))
  const sum = createHash('sha256')
    .update(await readFile(path.join(dist, name)))
    .digest('hex')
  await writeFile(path.join(dist, SUMS), `${sum}  ${name}\n`)
  return [hostArch]
}

/** Whether `dist` exists with a stub for this machine (for tests that read the binary itself). */
export const hasHostStub = (dist, version) => existsSync(path.join(dist, stubName(version, hostArch)))
