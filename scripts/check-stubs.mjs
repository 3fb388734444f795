#!/usr/bin/env node
// `prepack`: refuse to pack a package without its remote stubs. The stubs are build outputs
// (stub/dist is git-ignored), so a plain `npm pack` / `npm publish` after a checkout would otherwise ship a
// package whose workspaces and `setup` fail on every host. Checks that the stub of each shipped arch is
// there under this version's name and that SHA256SUMS lists exactly what is there, with matching sums.
//
// Usage: node scripts/check-stubs.mjs [--dir DIR] [--arch ARCH]...   (default: stub/dist, x86_64 aarch64 armv7)
// A dev package for this machine only (the tests' own) names its arch: --arch x86_64.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

/** The Linux arches a published package carries a stub for (scripts/build-dist.sh, stub/build.sh). */
export const SHIPPED_ARCHES = ['x86_64', 'aarch64', 'armv7']
export const SUMS = 'SHA256SUMS'

/** The file name the addon looks for (src/workspace/bootstrap.rs `stub_binary`). */
export const stubName = (version, arch) => `opencode-remote-stub-${version}-${arch}-linux`

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')

/**
 * The problems with the stubs in `dir` for `arches`; empty when they are complete.
 * @returns {string[]}
 */
export function stubProblems(dir, version, arches = SHIPPED_ARCHES) {
  const problems = []
  const shown = (name) => path.join(path.relative(process.cwd(), dir) || '.', name)
  const sumsFile = path.join(dir, SUMS)
  const listed = new Map()
  if (existsSync(sumsFile)) {
    for (const line of readFileSync(sumsFile, 'utf8').split('\n')) {
      const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim())
      if (match) listed.set(match[2], match[1])
    }
  } else {
    problems.push(`${shown(SUMS)} is missing`)
  }
  for (const arch of arches) {
    const name = stubName(version, arch)
    if (!existsSync(path.join(dir, name))) problems.push(`${shown(name)} is missing`)
    else if (existsSync(sumsFile) && !listed.has(name)) problems.push(`${shown(SUMS)} does not list ${name}`)
  }
  for (const [name, sum] of listed) {
    const file = path.join(dir, name)
    if (!existsSync(file)) problems.push(`${shown(SUMS)} lists ${name}, which is missing`)
    else if (sha256(file) !== sum) problems.push(`${shown(name)} does not match its sum in ${SUMS}`)
  }
  return problems
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { dir: { type: 'string', default: 'stub/dist' }, arch: { type: 'string', multiple: true } },
  })
  const version = JSON.parse(readFileSync('package.json', 'utf8')).version
  const problems = stubProblems(path.resolve(values.dir), version, values.arch ?? SHIPPED_ARCHES)
  if (problems.length) {
    console.error(
      `check-stubs: this package would ship without working remote stubs:\n` +
        problems.map((p) => `  - ${p}\n`).join('') +
        `Build them with \`npm run build:dist\` (or \`bash stub/build.sh\` for the stubs alone), then pack again.`,
    )
    process.exit(1)
  }
  console.error(`check-stubs: ${(values.arch ?? SHIPPED_ARCHES).join(', ')} stubs and ${SUMS} OK`)
}
