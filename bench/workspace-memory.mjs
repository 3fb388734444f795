// Workspace memory benchmark: what each SSH workspace adds to this machine's memory. A real control plane
// (`opencode serve` with the packed plugin, OPENCODE_EXPERIMENTAL_WORKSPACES=1) creates one workspace, then a
// second on the same project, against a real sshd on loopback; after each, the processes of the control
// plane's tree are read from /proc: RSS, PSS (shared pages split between the processes that map them) and
// USS (pages only this process maps: what stopping it would free). Target (issue 12): a second workspace on
// the same project adds ≤ 100 MB; the ratio is the second workspace's added USS over 100 MB. (The first
// starts the project's shared workspace server, which the second joins.) This user's connection-sharing
// helper, detached from that tree, is counted with it once it runs.
// Prints one `BENCH {...}` line per step and a summary; exits 1 only on a crash.
//
//   npm run bench:workspace-memory
import { readFileSync, readdirSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import { startFakeLlm } from '../__test__/harness/fake-llm.mjs'
import { makeOpencodeHome, startServe } from '../__test__/harness/opencode.mjs'
import { startSshd } from '../__test__/harness/sshd.mjs'
import { installPackedPackage } from '../__test__/support/package.mjs'
import { sharingHelperPids } from '../__test__/support/sharing.mjs'

const TARGET_MB = 100
/** Time for a new workspace's server to finish loading and settle before it is measured. */
const SETTLE_MS = 5000
const MB = 1024 * 1024

const log = (...a) => process.stderr.write(`[bench] ${a.join(' ')}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const mb = (bytes) => Math.round((bytes / MB) * 10) / 10

/** RSS, PSS and USS of one process, in bytes, from smaps_rollup; undefined once it is gone. */
function memoryOf(pid) {
  try {
    const fields = {}
    for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB/.exec(line)
      if (m) fields[m[1]] = Number(m[2]) * 1024
    }
    return {
      rss: fields.Rss,
      pss: fields.Pss,
      uss: (fields.Private_Clean ?? 0) + (fields.Private_Dirty ?? 0),
    }
  } catch {
    return undefined
  }
}

/** `pid` and every process below it, with its command name. */
function tree(pid) {
  const children = new Map()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (!children.has(parent)) children.set(parent, [])
      children.get(parent).push(Number(entry))
    } catch {}
  }
  const out = []
  const walk = (p) => {
    let argv = ''
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean)
    } catch {}
    out.push({
      pid: p,
      what: Array.isArray(argv) ? path.basename(argv[0] ?? '?') + ' ' + (argv[1] ?? '') : '?',
    })
    for (const c of children.get(p) ?? []) walk(c)
  }
  walk(pid)
  return out
}

/** The control plane's tree, and this lab's connection-sharing helper once it runs: detached from the tree,
 * but the workspaces' memory. */
function measure(rootPid, stateHome) {
  const processes = [rootPid, ...sharingHelperPids(stateHome)]
    .flatMap(tree)
    .map((p) => ({ ...p, ...memoryOf(p.pid) }))
    .filter((p) => p.rss !== undefined)
  const sum = (key) => processes.reduce((n, p) => n + p[key], 0)
  return { processes, rss: sum('rss'), pss: sum('pss'), uss: sum('uss') }
}

async function main() {
  const [llm, sshd, pkg] = await Promise.all([startFakeLlm(), startSshd(), installPackedPackage()])
  const local = await makeOpencodeHome(
    path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-bench-mem-')), 'local'),
    {
      llm,
      plugins: [`file://${pkg.packageDir}`],
      env: { OPENCODE_EXPERIMENTAL_WORKSPACES: '1' },
    },
  )
  await sshd.writeClientSshFiles(local.home, { alias: 'box' })
  await writeFile(
    path.join(local.config, 'opencode', 'hosts.json'),
    JSON.stringify({ hosts: { box: 'box' } }),
  )
  const serve = await startServe(local.env, local.projectDir)
  const rows = []
  try {
    const query = `directory=${encodeURIComponent(local.projectDir)}`
    // The control plane's own instance, loaded as a user's first request would load it.
    await serve.client.get(`/path?${query}`)
    await sleep(SETTLE_MS)
    const steps = [{ step: 'control plane alone', ...measure(serve.pid, local.env.XDG_STATE_HOME) }]
    for (const n of [1, 2]) {
      log(`creating workspace ${n}`)
      const ws = await serve.client.post(
        `/experimental/workspace?${query}`,
        { type: 'ssh-provider', extra: { host: 'box', directory: `~/mem-${n}` } },
        { timeoutMs: 240_000, retries: 0 },
      )
      // A session in it, so its server has done real work, not only started.
      await serve.client.post(`/session?workspace=${ws.id}&${query}`, {}, { timeoutMs: 60_000 })
      await sleep(SETTLE_MS)
      steps.push({
        step: `with ${n} workspace${n > 1 ? 's' : ''}`,
        ...measure(serve.pid, local.env.XDG_STATE_HOME),
      })
    }
    for (let i = 1; i < steps.length; i++) {
      const added = {
        rss: steps[i].rss - steps[i - 1].rss,
        pss: steps[i].pss - steps[i - 1].pss,
        uss: steps[i].uss - steps[i - 1].uss,
      }
      const row = {
        case: `workspace ${i} added`,
        added_rss_mb: mb(added.rss),
        added_pss_mb: mb(added.pss),
        added_uss_mb: mb(added.uss),
        target_mb: TARGET_MB,
        ratio_uss_to_target: Math.round((added.uss / MB / TARGET_MB) * 100) / 100,
        processes: steps[i].processes.map((p) => `${p.what.trim()} rss=${mb(p.rss)} uss=${mb(p.uss)}`),
      }
      rows.push(row)
      console.log(`BENCH ${JSON.stringify(row)}`)
    }
    console.log(
      `BENCH ${JSON.stringify({ case: 'control plane alone', rss_mb: mb(steps[0].rss), uss_mb: mb(steps[0].uss) })}`,
    )
    console.log('\nWorkspace memory (one run; USS = what stopping it frees, PSS = shared pages split):')
    for (const [i, r] of rows.entries()) {
      const added = `  ${r.case}: RSS +${r.added_rss_mb} MB, PSS +${r.added_pss_mb} MB, USS +${r.added_uss_mb} MB`
      // The first workspace starts the project's workspace server; the target is for the ones after it.
      if (i === 0) {
        console.log(`${added} (starts the project's workspace server; no target)`)
        continue
      }
      const met = r.added_uss_mb <= TARGET_MB ? 'met' : 'MISSED'
      console.log(`${added} — ${r.ratio_uss_to_target}× the ${TARGET_MB} MB target (${met})`)
    }
  } finally {
    await serve.stop()
    await sshd.stop()
    await llm.stop()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
