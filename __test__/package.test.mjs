// Packaging: what `npm pack` yields installs and runs on a machine without Rust, and works with the real
// `opencode plugin` (alias `plug`). Everything here runs with a PATH that has no cargo/rustc/rustup (only
// /usr/bin, /bin, node's dir and, for OpenCode, its pinned binary and rg), and installs offline from the
// npm cache that `npm install` of this repo filled.
//
// Two install layouts:
//   - "as packed": the test package's `npm pack` tarball (support/package.mjs: the work tree's files with
//     the stubs), which carries the root .node of the work tree;
//   - "as published" (when scripts/build-dist.sh has put the glibc 2.17 addon in npm/linux-x64-gnu/): the
//     root tarball without any .node plus `optionalDependencies` (what `napi prepublish` adds), installed
//     together with the packed npm/linux-x64-gnu platform package. The loader must then take the addon
//     from the platform package.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { accessSync, constants, existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { makeOpencodeHome, opencodeBinDir, rgDir, runOpencode, startServe } from './harness/opencode.mjs'
import { exec } from './harness/proc.mjs'
import { packTestPackage } from './support/package.mjs'

const repoRoot = path.resolve(import.meta.dirname, '..')
const pkgJson = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8'))
const { name: PKG, version: VERSION } = pkgJson
const BINARY = pkgJson.napi.binaryName
const PLATFORM = 'linux-x64-gnu'
const platformDir = path.join(repoRoot, 'npm', PLATFORM)
const distAddon = path.join(platformDir, `${BINARY}.${PLATFORM}.node`)
const RUST_TOOLS = ['cargo', 'rustc', 'rustup']
const TOOL = 'remote_login'
// No LLM request is ever made here; OpenCode only needs a provider in its config.
const UNUSED_LLM = 'http://127.0.0.1:9/v1'

/** PATH of a machine without Rust: the system dirs and node's own dir, nothing from ~/.cargo. */
const noRustPath = [...new Set(['/usr/bin', '/bin', path.dirname(process.execPath)])].join(':')

function which(cmd, pathValue) {
  for (const dir of pathValue.split(':')) {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK)
      return path.join(dir, cmd)
    } catch {
      // not here
    }
  }
  return null
}

function assertNoRust(pathValue) {
  for (const tool of RUST_TOOLS)
    assert.equal(which(tool, pathValue), null, `${tool} found on PATH ${pathValue}`)
}

/** Env for npm/node without Rust: no CARGO_/RUSTUP_ vars, the shared npm cache, offline. */
function noRustEnv(npmCache, extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(CARGO|RUSTUP|RUST|npm_|NAPI_RS_)/i.test(k)) continue
    env[k] = v
  }
  return {
    ...env,
    PATH: noRustPath,
    npm_config_cache: npmCache,
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    ...extra,
  }
}

const sha256 = async (file) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex')

/** `npm pack` of a staged or platform package (prepack is the repository's, see the prepack tests). */
async function npmPack(dir, dest, env) {
  const { stdout } = await exec('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dest], {
    cwd: dir,
    env,
    timeoutMs: 60_000,
  })
  const info = JSON.parse(stdout)[0]
  return { tarball: path.join(dest, info.filename), files: info.files.map((f) => f.path) }
}

/** Names the addon itself exports (dlopen in a child with the no-Rust env). */
async function nativeExports(file, env) {
  const script = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(file)}); console.log(JSON.stringify(Object.keys(m.exports)))`
  return JSON.parse((await exec(process.execPath, ['-e', script], { env })).stdout)
}

/** Names the generated loader (index.js) takes from the addon. */
async function loaderExports() {
  const js = await readFile(path.join(repoRoot, 'index.js'), 'utf8')
  return [...js.matchAll(/^module\.exports\.(\w+) = nativeBinding\.\1$/gm)].map((m) => m[1])
}

/** `npm install` the given tarballs into a new app dir under `root`. */
async function installTarballs(root, name, tarballs, env) {
  const app = path.join(root, name)
  await mkdir(app, { recursive: true })
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name, private: true }))
  await exec('npm', ['install', '--no-package-lock', ...tarballs], { cwd: app, env, timeoutMs: 60_000 })
  return path.join(app, 'node_modules', PKG)
}

/**
 * The root package as `napi prepublish` publishes it: no .node inside, the platform package as an
 * optional dependency.
 */
async function publishedRootTarball(root, rootTarball, env) {
  const stage = path.join(root, 'stage')
  await mkdir(stage)
  await exec('tar', ['-xzf', rootTarball, '-C', stage])
  const dir = path.join(stage, 'package')
  for (const f of await readdir(dir)) if (f.endsWith('.node')) await rm(path.join(dir, f))
  const json = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'))
  json.optionalDependencies = { ...json.optionalDependencies, [`${PKG}-${PLATFORM}`]: VERSION }
  await writeFile(path.join(dir, 'package.json'), JSON.stringify(json, null, 2))
  await mkdir(path.join(root, 'published'))
  return (await npmPack(dir, path.join(root, 'published'), env)).tarball
}

/** Which .node file `require`-ing the installed package's binding loads, with a no-Rust env. */
async function loadedAddon(packageDir, env) {
  const script = `
    const b = require(${JSON.stringify(path.join(packageDir, 'index.js'))})
    const nodes = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
    console.log(JSON.stringify({ nodes, target: b.__napiBindingTarget ?? null, exports: Object.keys(b) }))`
  const { stdout } = await exec(process.execPath, ['-e', script], { env, cwd: path.dirname(packageDir) })
  return JSON.parse(stdout.trim().split('\n').at(-1))
}

/**
 * OpenCode env: its pinned binary and rg, the system dirs, no Rust. npm stays offline with the harness's
 * empty private cache, so OpenCode's background install of @opencode-ai/plugin into each config dir fails
 * at once (with a well-filled cache it crawls through the dependency tree for about a minute first).
 */
async function opencodeHome(root, plugins = []) {
  const pathValue = [...new Set([opencodeBinDir, rgDir(), ...noRustPath.split(':')])].join(':')
  assertNoRust(pathValue)
  const home = await makeOpencodeHome(root, { llm: UNUSED_LLM, plugins, env: { PATH: pathValue } })
  for (const k of Object.keys(home.env)) if (/^(CARGO|RUSTUP|RUST)/.test(k)) delete home.env[k]
  return home
}

/**
 * OpenCode 1.18.33's `opencode plug` exits still holding its npm-install lock (`<state>/opencode/locks/
 * <hash>.lock/meta.json` names the dead pid), and the next OpenCode process waits about a minute for the
 * lock's heartbeat to go stale before it loads plugins. Remove the locks whose owner is gone.
 * @returns {Promise<string[]>} the locks removed
 */
async function clearDeadLocks(home) {
  const dir = path.join(home.state, 'opencode', 'locks')
  const removed = []
  for (const name of existsSync(dir) ? await readdir(dir) : []) {
    let pid
    try {
      pid = JSON.parse(await readFile(path.join(dir, name, 'meta.json'), 'utf8')).pid
    } catch {
      continue
    }
    try {
      process.kill(pid, 0)
      continue // alive
    } catch (err) {
      if (err.code !== 'ESRCH') continue
    }
    await rm(path.join(dir, name), { recursive: true, force: true })
    removed.push(`${name} (pid ${pid})`)
  }
  return removed
}

/**
 * The work-tree files (relative to the repo) that `entry` imports with relative specifiers, followed
 * through each of them: what a packed plugin needs beside its entry.
 */
async function relativeImports(entry) {
  const seen = new Set()
  const walk = async (file) => {
    const rel = path.relative(repoRoot, file)
    if (seen.has(rel)) return
    seen.add(rel)
    const source = await readFile(file, 'utf8')
    for (const [, spec] of source.matchAll(/(?:from|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g))
      await walk(path.resolve(path.dirname(file), spec))
  }
  await walk(entry)
  return [...seen]
}

/** Start `opencode serve` in `dir`, return the tool ids it lists there, stop it. */
async function toolIds(home, dir) {
  const serve = await startServe(home.env, dir)
  try {
    const ids = await serve.client.get(`/experimental/tool/ids?directory=${encodeURIComponent(dir)}`)
    return { ids, logs: serve.logs() }
  } finally {
    await serve.stop()
  }
}

describe('npm pack', { timeout: 180_000 }, () => {
  let root
  let npmCache
  let packed // { tarball, files }
  let env

  before(async () => {
    root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ocr-package-')))
    npmCache = (await exec('npm', ['config', 'get', 'cache'], { cwd: repoRoot })).stdout.trim()
    env = noRustEnv(npmCache)
    await mkdir(path.join(root, 'packs'))
    packed = await packTestPackage(path.join(root, 'packs'), { env })
  })
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true })
  })

  test('the no-Rust PATH has node and npm but no cargo, rustc or rustup', (t) => {
    assertNoRust(noRustPath)
    assert.ok(which('node', noRustPath), 'node on the no-Rust PATH')
    assert.ok(which('npm', noRustPath), 'npm on the no-Rust PATH')
    t.diagnostic(
      `no-Rust PATH: ${noRustPath}; cargo on this process's PATH: ${which('cargo', process.env.PATH ?? '')}`,
    )
  })

  test('the tarball has the plugin, the loader, the bindings, the schemas and no build inputs', () => {
    const files = new Set(packed.files)
    for (const f of ['package.json', 'api.js', 'api.d.ts', 'index.js', 'index.d.ts', 'plugin/server.mjs'])
      assert.ok(files.has(f), `${f} in the tarball`)
    assert.ok(
      packed.files.some((f) => f.startsWith('schema/')),
      'schema/ in the tarball',
    )
    for (const f of packed.files) assert.doesNotMatch(f, /^(src|target|stub\/src|protocol|__test__|npm)\//)
    assert.ok(!files.has('Cargo.toml'), 'no Cargo.toml: nothing to build on install')
    const scripts = pkgJson.scripts ?? {}
    for (const s of ['preinstall', 'install', 'postinstall'])
      assert.equal(scripts[s], undefined, `no ${s} script`)
  })

  test('the tarball has every module the plugin entry imports, through every relative import', async () => {
    const files = new Set(packed.files)
    const needed = await relativeImports(path.join(repoRoot, 'plugin', 'server.mjs'))
    assert.ok(needed.includes('plugin/remote/index.mjs'), `the plugin's modules: ${needed.join(' ')}`)
    for (const f of needed) assert.ok(files.has(f), `${f} (imported by the plugin) in the tarball`)
  })

  test('the tarball carries the static stubs for x86_64, aarch64 and armv7 Linux', async (t) => {
    if (!packed.arches.includes('aarch64')) {
      t.skip('stub/dist has no current release build (scripts/build-dist.sh or stub/build.sh)')
      return
    }
    for (const arch of ['x86_64', 'aarch64', 'armv7']) {
      const re = new RegExp(`^stub/dist/opencode-remote-stub-[^/]+-${arch}-linux$`)
      assert.ok(
        packed.files.some((f) => re.test(f)),
        `${arch} stub in the tarball: ${packed.files.join(' ')}`,
      )
    }
    assert.ok(packed.files.includes('stub/dist/SHA256SUMS'), 'stub/dist/SHA256SUMS in the tarball')
  })

  test('as packed: installs without Rust, loads the packed .node, the stubs are executable', async () => {
    const dir = await installTarballs(root, 'app-packed', [packed.tarball], env)
    const hasRootNode = packed.files.some((f) => /^[^/]+\.node$/.test(f))
    assert.ok(hasRootNode, 'the work tree has no built .node to pack: run `npm run build:debug`')
    const loaded = await loadedAddon(dir, env)
    assert.deepEqual(
      loaded.nodes.map((f) => path.relative(dir, f)),
      [`${BINARY}.${PLATFORM}.node`],
    )
    assert.ok(loaded.exports.includes('remoteLogin'), `exports: ${loaded.exports}`)

    const stubs = path.join(dir, 'stub', 'dist')
    if (existsSync(stubs)) {
      const sums = (await readFile(path.join(stubs, 'SHA256SUMS'), 'utf8')).trim().split('\n')
      assert.equal(sums.length, packed.arches.length)
      for (const line of sums) {
        const [sum, file] = line.split(/\s+\*?/)
        const st = await stat(path.join(stubs, file))
        assert.ok(st.mode & 0o100, `${file} is executable after install`)
        assert.equal(await sha256(path.join(stubs, file)), sum, `${file} matches SHA256SUMS`)
      }
    }
  })

  test('as published: root + platform package, the addon comes from the platform package; OpenCode lists remote_login', async (t) => {
    let dir
    let expectNode
    let useDist = existsSync(distAddon)
    if (useDist) {
      // A release addon built from older sources than index.js lacks functions the plugin needs.
      const have = new Set(await nativeExports(distAddon, env))
      const missing = (await loaderExports()).filter((n) => !have.has(n))
      if (missing.length) {
        t.diagnostic(`npm/${PLATFORM} has a stale release addon (no ${missing}): rerun scripts/build-dist.sh`)
        useDist = false
      }
    }
    if (useDist) {
      // The glibc 2.17 release addon from scripts/build-dist.sh, in its own package.
      await mkdir(path.join(root, 'platform'))
      const platform = await npmPack(platformDir, path.join(root, 'platform'), env)
      assert.deepEqual(platform.files.sort(), ['README.md', `${BINARY}.${PLATFORM}.node`, 'package.json'])
      const rootTarball = await publishedRootTarball(root, packed.tarball, env)
      dir = await installTarballs(root, 'app-published', [rootTarball, platform.tarball], env)
      assert.deepEqual(
        (await readdir(dir)).filter((f) => f.endsWith('.node')),
        [],
        'no .node in the root package',
      )
      expectNode = path.join(dir, '..', `${PKG}-${PLATFORM}`, `${BINARY}.${PLATFORM}.node`)
      assert.equal(await sha256(expectNode), await sha256(distAddon))
    } else {
      t.diagnostic('npm/linux-x64-gnu has no release addon (scripts/build-dist.sh): using the packed layout')
      dir = await installTarballs(root, 'app-published', [packed.tarball], env)
      expectNode = path.join(dir, `${BINARY}.${PLATFORM}.node`)
    }
    const loaded = await loadedAddon(dir, env)
    assert.deepEqual(loaded.nodes, [await realpath(expectNode)])

    // The real OpenCode loads the installed package as a plugin, by file URL.
    const home = await opencodeHome(path.join(root, 'oc-published'), [`file://${dir}`])
    const { ids, logs } = await toolIds(home, home.projectDir)
    assert.ok(ids.includes(TOOL), `${TOOL} listed: ${JSON.stringify(ids)}\n${logs.slice(-4000)}`)
  })

  /**
   * `opencode plug <spec>` in a fresh project: it installs the tarball (offline; the dependencies come from
   * the npm cache `npm install` filled), detects the server target and adds `spec` to the project's
   * .opencode/opencode.json; then `opencode serve` there lists remote_login.
   * @param {{spec: string, copyTarball?: boolean, npmForServe?: boolean}} o `copyTarball`: put the tarball
   *   into the project dir first; `npmForServe`: the server needs the npm cache too (it reinstalls a spec
   *   without a package name on every start)
   */
  async function plugAndLoad(t, name, o) {
    const home = await opencodeHome(path.join(root, name))
    if (o.copyTarball)
      await copyFile(packed.tarball, path.join(home.projectDir, path.basename(packed.tarball)))
    const plugEnv = { ...home.env, npm_config_cache: npmCache }
    // A guard, not a speed check: plug's npm install took over 60 s beside the load test on 2 cores.
    const plug = await runOpencode(plugEnv, home.projectDir, ['plug', o.spec], { timeoutMs: 240_000 })
    const out = plug.stdout + plug.stderr
    assert.equal(plug.code, 0, out)
    assert.match(out, /Detected server target/)
    const configFile = path.join(home.projectDir, '.opencode', 'opencode.json')
    assert.ok(out.includes(`Added to ${configFile}`), out)
    const config = JSON.parse(await readFile(configFile, 'utf8'))
    assert.deepEqual(config.plugin, [o.spec])

    // Installed into OpenCode's package cache, with the addon inside.
    const installed = path.join(home.cache, 'opencode', 'packages', o.spec, 'node_modules', PKG)
    assert.ok(existsSync(path.join(installed, `${BINARY}.${PLATFORM}.node`)), `addon in ${installed}`)

    const stale = await clearDeadLocks(home)
    if (stale.length) t.diagnostic(`removed OpenCode locks left by the exited \`opencode plug\`: ${stale}`)
    const serveHome = o.npmForServe ? { ...home, env: plugEnv } : home
    const { ids, logs } = await toolIds(serveHome, home.projectDir)
    assert.ok(ids.includes(TOOL), `${TOOL} listed: ${JSON.stringify(ids)}\n${logs.slice(-4000)}`)
  }

  // OpenCode 1.18.33 takes a spec that looks like a path (absolute, `./…`, `file://…`) for a plugin
  // directory or file, and fails on a tarball that way ("failed to read file:///…/x.tgz … ENOENT
  // …/package.json"). npm specs go through its npm installer, which installs tarballs.
  test('opencode plug <name>@file:<tarball> installs it, writes the config, and the plugin loads', (t) =>
    plugAndLoad(t, 'oc-plug-file', { spec: `${PKG}@file:${packed.tarball}` }))

  test('opencode plug <tarball> (relative, in the project dir) installs it and the plugin loads', (t) =>
    plugAndLoad(t, 'oc-plug-tgz', {
      spec: path.basename(packed.tarball),
      copyTarball: true,
      npmForServe: true,
    }))
})

// `prepack` (scripts/check-stubs.mjs) on a copy of the package: packing without the stubs, or with a stub
// that is not what SHA256SUMS says, fails and says what to run; with every stub and their sums it packs.
describe('prepack', { timeout: 60_000 }, () => {
  let dir
  const stubs = () => path.join(dir, 'stub', 'dist')
  const name = (arch) => `opencode-remote-stub-${VERSION}-${arch}-linux`
  const pack = () =>
    exec('npm', ['pack', '--dry-run', '--json'], { cwd: dir, timeoutMs: 30_000 }).then(
      ({ stdout }) => ({ code: 0, files: JSON.parse(stdout)[0].files.map((f) => f.path) }),
      (error) => ({ code: error.code, stderr: String(error.stderr ?? error.message) }),
    )

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-prepack-'))
    await mkdir(path.join(dir, 'scripts'))
    await copyFile(path.join(repoRoot, 'package.json'), path.join(dir, 'package.json'))
    await copyFile(
      path.join(repoRoot, 'scripts', 'check-stubs.mjs'),
      path.join(dir, 'scripts', 'check-stubs.mjs'),
    )
  })
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  test('without stub/dist, npm pack fails, naming the missing files and the build command', async () => {
    const out = await pack()
    assert.notEqual(out.code, 0, 'npm pack refused')
    for (const missing of [name('x86_64'), name('aarch64'), name('armv7'), 'SHA256SUMS']) {
      assert.ok(out.stderr.includes(`stub/dist/${missing} is missing`), out.stderr)
    }
    assert.match(out.stderr, /npm run build:dist/)
  })

  test('with every stub and their SHA256SUMS it packs them; a stub that does not match its sum fails', async () => {
    await mkdir(stubs(), { recursive: true })
    const sums = []
    for (const arch of ['x86_64', 'aarch64', 'armv7']) {
      await writeFile(path.join(stubs(), name(arch)), `stub for ${arch}\n`, { mode: 0o755 })
      sums.push(`${await sha256(path.join(stubs(), name(arch)))}  ${name(arch)}`)
    }
    await writeFile(path.join(stubs(), 'SHA256SUMS'), sums.join('\n') + '\n')
    const ok = await pack()
    assert.equal(ok.code, 0, ok.stderr)
    for (const f of [name('x86_64'), name('aarch64'), name('armv7'), 'SHA256SUMS'])
      assert.ok(ok.files.includes(`stub/dist/${f}`))

    await writeFile(path.join(stubs(), name('aarch64')), 'rebuilt, sums not updated\n', { mode: 0o755 })
    const stale = await pack()
    assert.notEqual(stale.code, 0, 'npm pack refused a stale SHA256SUMS')
    assert.ok(
      stale.stderr.includes(`stub/dist/${name('aarch64')} does not match its sum in SHA256SUMS`),
      stale.stderr,
    )
  })
})
