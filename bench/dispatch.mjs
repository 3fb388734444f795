// Dispatch benchmark: opencode-remote (`remoteLogin`, one russh connection) against the seed
// `opencode-remote-login` 0.2.1 sequence (a fresh `ssh`/`scp` per step, a `test -f` poll every 2 s), both
// through the same delaying relay in front of a real sshd on loopback whose remote user runs the real
// `opencode`. Prints one `BENCH {...}` line per case and a summary; exits 1 only on a crash.
//
// Cases, for an added RTT of 0 and 50 ms (relay delay 0 / 25 ms each way, for ssh, scp and our client alike):
// - dispatch-one-way: ours = HTTP read of the session + `remoteLogin` in a fresh Node process (cold pool);
//   baseline = `opencode export` … last `ssh` returning. The seed's detached `nohup bash -c … &` keeps the SSH
//   channel's stdout/stderr open, so that last `ssh` only returns when the remote `opencode run` ends;
//   so `baseline_ms` is start → the remote run's log file is created (the fair comparison), and
//   `baseline_to_last_ssh_ms` is kept for reference.
// - round-trip finished->verified / finished->returned: from the remote run's end (ours: the job's `done`
//   stamp; baseline: the back-file's mtime) to the session on local disk / imported locally.
// Progress goes to stderr; stdout holds only the BENCH lines and the summary.
//
//   npm run bench                    # N=3 samples per case
//   BENCH_SAMPLES=5 npm run bench
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFile, chown, mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { startFakeLlm } from '../__test__/harness/fake-llm.mjs'
import {
  makeOpencodeHome,
  opencodeBin,
  opencodeConfig,
  remoteOpencodeEnv,
  repoRoot,
  startServe,
} from '../__test__/harness/opencode.mjs'
import { exec, listProcesses } from '../__test__/harness/proc.mjs'
import { startRelay } from '../__test__/harness/relay.mjs'
import { startSshd } from '../__test__/harness/sshd.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const SAMPLES = Math.max(1, Number.parseInt(process.env.BENCH_SAMPLES ?? '3', 10) || 3)
const RTTS = [0, 50]
const HOST = 'bench'
const LOCAL_MODEL = { providerID: 'fake', modelID: 'local-m' }
/** The seed's options for every ssh/scp (no ControlMaster: every step is a new connection). */
const SEED_SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10']
const TARGETS = { dispatch0: 0.5, dispatch50: 0.35, verifiedMs: 300, visibleMs: 1500 }

const epochMs = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (...a) => process.stderr.write(`[bench] ${a.join(' ')}\n`)

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!s.length) return NaN
  const mid = s.length >> 1
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null)
const r3 = (x) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null)

let llm, sshd, relay, serve, local, root, sshConfigPath

async function setup() {
  root = await mkdtemp(path.join(os.tmpdir(), 'ocr-bench-'))
  ;[llm, sshd] = await Promise.all([startFakeLlm(), startSshd({ env: remoteOpencodeEnv() })])

  // The remote Unix user's own OpenCode config (fake LLM, model remote-m), as in the e2e test.
  const remoteConfigDir = path.join(sshd.userHome, '.config', 'opencode')
  await mkdir(remoteConfigDir, { recursive: true })
  const remoteConfig = path.join(remoteConfigDir, 'opencode.json')
  await writeFile(
    remoteConfig,
    JSON.stringify(opencodeConfig({ baseURL: llm.baseURL, model: 'fake/remote-m' })),
  )
  for (const p of [path.join(sshd.userHome, '.config'), remoteConfigDir, remoteConfig]) {
    await chown(p, sshd.uid, sshd.uid)
  }

  local = await makeOpencodeHome(path.join(root, 'local'), { llm })
  await mkdir(path.join(root, 'tmp'), { recursive: true })
  relay = await startRelay({ targetPort: sshd.port })

  // ~/.ssh/config: `bench` goes through the relay; known_hosts also names the relay's port, so both our
  // client and OpenSSH check the real host key there.
  const ssh = await sshd.writeClientSshFiles(local.home, { alias: 'bench-direct' })
  sshConfigPath = ssh.configPath
  const block = [
    `Host ${HOST}`,
    '  HostName 127.0.0.1',
    `  Port ${relay.port}`,
    `  User ${sshd.user}`,
    `  IdentityFile ${ssh.identityFile}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${ssh.knownHostsPath}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
  ]
  await appendFile(ssh.configPath, block.join('\n') + '\n\n')
  await appendFile(ssh.knownHostsPath, `[127.0.0.1]:${relay.port} ${sshd.hostKeyPub}\n`)

  const hosts = { hosts: { [HOST]: { host: HOST, model: 'fake/remote-m', agent: 'build' } } }
  await writeFile(path.join(local.config, 'opencode', 'hosts.json'), JSON.stringify(hosts, null, 2) + '\n')

  serve = await startServe(local.env, local.projectDir)
}

async function teardown() {
  await relay?.stop().catch(() => {})
  await serve?.stop().catch(() => {})
  await sshd?.stop().catch(() => {})
  await llm?.stop().catch(() => {})
  if (root) await rm(root, { recursive: true, force: true }).catch(() => {})
}

/** A fresh local session with a couple of turns of history (one with a local bash tool call). */
async function makeSession() {
  const session = await serve.client.post('/session', {})
  const turn = (text) =>
    serve.client.post(
      `/session/${session.id}/message`,
      { model: LOCAL_MODEL, parts: [{ type: 'text', text }] },
      { timeoutMs: 120_000, retries: 0 },
    )
  await turn('Look at the project and plan the work: list what needs to change and why.')
  await turn('CALL_TOOL:bash {"command":"echo bench-history && ls -la"}')
  return session.id
}

/** Wait until the remote Unix user runs nothing (the detached `opencode run` of the last sample ended). */
async function waitRemoteIdle(timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs
  while (listProcesses().some((p) => p.uid === sshd.uid)) {
    if (Date.now() > deadline) {
      log(`warning: the remote user still has processes after ${timeoutMs} ms`)
      return
    }
    await sleep(100)
  }
}

/** Birth and modification time of a file in epoch ms (sub-ms), or null. */
async function times(file) {
  try {
    const s = await stat(file, { bigint: true })
    return { birth: Number(s.birthtimeNs) / 1e6, mtime: Number(s.mtimeNs) / 1e6 }
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------------------

async function runOurs(sessionId, mode) {
  const accepted = relay.stats().accepted
  const args = {
    serveUrl: serve.url,
    sessionId,
    mode,
    directory: local.projectDir,
    opencodeBin,
    apiPath: path.join(repoRoot, 'api.js'),
  }
  const { stdout } = await exec(process.execPath, [path.join(HERE, 'ours-child.mjs'), JSON.stringify(args)], {
    env: { ...local.env, PWD: local.projectDir },
    cwd: local.projectDir,
    timeoutMs: 300_000,
  })
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '))
  if (!line) throw new Error(`ours-child printed no RESULT:\n${stdout}`)
  const out = JSON.parse(line.slice('RESULT '.length))
  out.connections = relay.stats().accepted - accepted
  // Where the time went, from the job directory's file times (same machine, same clock).
  const job = path.join(sshd.userHome, '.opencode-remote', 'jobs', out.jobId)
  const [dir, ocPath, workdir, importLog] = await Promise.all(
    ['', 'opencode.path', 'workdir', 'import.log'].map((f) => times(path.join(job, f))),
  )
  if (dir && ocPath && workdir && importLog) {
    out.phases = {
      read: out.readDone - out.start,
      connectToRemoteShell: dir.birth - out.start,
      unpackAndLookup: ocPath.birth - dir.birth,
      versionProbe: workdir.birth - ocPath.birth,
      remoteImport: importLog.mtime - importLog.birth,
      importEndToReturn: out.end - importLog.mtime,
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Baseline: the seed's Linux sequence, `os` known (no powershell probe)
// ---------------------------------------------------------------------------------------------------------

/** One seed-style step: a fresh process, output collected like execFileSync. */
function run(file, args, o = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: o.env ?? local.env, cwd: o.cwd, timeout: o.timeoutMs ?? 120_000, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && !o.allowFail) {
          return reject(new Error(`${path.basename(file)} ${args.join(' ')}: ${err.message}\n${stderr}`))
        }
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr })
      },
    )
    child.stdin.end()
  })
}
const ssh = (cmd, o) => run('ssh', ['-F', sshConfigPath, ...SEED_SSH_OPTIONS, HOST, cmd], o)
const scp = (from, to) => run('scp', ['-F', sshConfigPath, ...SEED_SSH_OPTIONS, from, to])
const localOpencode = (args) =>
  run(opencodeBin, args, { env: { ...local.env, PWD: local.projectDir }, cwd: local.projectDir })

/** The seed's continuation script (§1.5 step 7), Linux, no directory (so `cd ~`). */
function seedScript({ sid, runID, mode }) {
  const task =
    mode === 'one-way'
      ? 'Continue the assigned task from where it left off. Complete the work and stop.'
      : 'Complete the assigned task on this host.'
  const ret = mode === 'one-way' ? '' : '\n[Return]\nWhen done, stop: the session is exported and returned.'
  const runner =
    mode === 'one-way'
      ? `nohup bash -c 'session_id=$1; msg=$2; log_file=$3; opencode run "--session=$session_id" "$msg" > "$log_file" 2>&1' _ "$SESSION_ID" "$MSG" "$LOG_FILE" &`
      : `nohup bash -c 'session_id=$1; msg=$2; log_file=$3; back_file=$4; opencode run "--session=$session_id" "$msg" > "$log_file" 2>&1; opencode export "$session_id" > "$back_file"' _ "$SESSION_ID" "$MSG" "$LOG_FILE" "$BACK_FILE" &`
  return `#!/bin/bash
set -e
cd ~
SESSION_ID='${sid}'
LOG_FILE='/tmp/${sid}-${runID}.log'
BACK_FILE='/tmp/${sid}-${runID}.json'
CWD=$(pwd)
MSG=$(cat <<EOF
[Environment]
You are now on remote host ${HOST} (Linux), working directory: $CWD.

[Constraints]
- The local machine's filesystem and tools are NOT accessible from here.
- Use this host's filesystem, tools, and resources exclusively.
- Do not delegate to other hosts or call remote_login again.

[Task]
${task}
${ret}
EOF
)
${runner}
`
}

/** Steps 1–8: export, patch, scp, import, rm, script, scp, run. Returns when the last ssh returns. */
async function seedDispatch(sid, mode) {
  const runID = randomBytes(6).toString('hex')
  const tmp = path.join(root, 'tmp')
  const start = epochMs()
  const steps = {}
  let mark = start
  const step = (name) => {
    const now = epochMs()
    steps[name] = now - mark
    mark = now
  }
  const { stdout } = await localOpencode(['export', sid])
  const data = JSON.parse(stdout)
  if (!data?.info) throw new Error(`export returned no session: ${stdout.slice(0, 200)}`)
  // patchAgentAndModel (there is no pending remote_login part to fix: no plugin ran here).
  data.info.agent = 'build'
  data.info.model = { providerID: 'fake', id: 'remote-m' }
  const exportFile = path.join(tmp, `opencode-export-${runID}.json`)
  await writeFile(exportFile, JSON.stringify(data))
  step('export')
  const remoteImport = `/tmp/opencode-import-${sid}-${runID}.json`
  await scp(exportFile, `${HOST}:${remoteImport}`)
  step('scpExport')
  await ssh(`opencode import '${remoteImport}'`)
  step('sshImport')
  await ssh(`rm -f '${remoteImport}'`, { allowFail: true })
  step('sshRm')
  await unlink(exportFile).catch(() => {})
  const scriptFile = path.join(tmp, `opencode-continue-${runID}.sh`)
  await writeFile(scriptFile, seedScript({ sid, runID, mode }))
  const remoteScript = `/tmp/opencode-continue-${sid}-${runID}.sh`
  await scp(scriptFile, `${HOST}:${remoteScript}`)
  step('scpScript')
  await ssh(`bash '${remoteScript}' && rm -f '${remoteScript}'`)
  step('sshRun')
  const end = epochMs()
  await unlink(scriptFile).catch(() => {})
  const logFile = `/tmp/${sid}-${runID}.log`
  const backFile = `/tmp/${sid}-${runID}.json`
  // When the remote `opencode run` started: its log file is created by the redirect just before it.
  const launched = (await times(logFile))?.birth ?? NaN
  return { runID, start, end, launched, steps, logFile, backFile, remoteFiles: [remoteImport, remoteScript] }
}

async function runBaselineOneWay(sid) {
  const accepted = relay.stats().accepted
  const d = await seedDispatch(sid, 'one-way')
  const connections = relay.stats().accepted - accepted
  await rm(d.logFile, { force: true })
  return { elapsedMs: d.end - d.start, launchMs: d.launched - d.start, steps: d.steps, connections }
}

async function runBaselineRoundTrip(sid) {
  const accepted = relay.stats().accepted
  const d = await seedDispatch(sid, 'round-trip')
  // Step 10: sleep 2 s, then a new ssh `test -f` per poll, at most 30 times.
  let polls = 0
  let ok = false
  for (let i = 0; i < 30 && !ok; i++) {
    await sleep(2000)
    polls++
    const r = await ssh(`test -f '${d.backFile}' && echo ok`, { allowFail: true, timeoutMs: 10_000 })
    ok = r.stdout.includes('ok')
  }
  if (!ok) throw new Error('baseline round trip: no back-file after 30 polls')
  // Step 11: pull back, restore agent/model, import locally.
  const localBack = path.join(root, 'tmp', `opencode-back-${randomBytes(6).toString('hex')}.json`)
  let partialPulls = 0
  for (;;) {
    await scp(`${HOST}:${d.backFile}`, localBack)
    try {
      JSON.parse((await readFile(localBack, 'utf8')).replace(/^\uFEFF/, ''))
      break
    } catch {
      // `test -f` raced a half-written export; the seed would fail here. Pull again (generous).
      if (++partialPulls > 20) throw new Error('baseline round trip: back-file never complete')
      await sleep(200)
    }
  }
  const onDisk = epochMs()
  const back = JSON.parse((await readFile(localBack, 'utf8')).replace(/^\uFEFF/, ''))
  back.info.agent = 'build'
  back.info.model = { providerID: LOCAL_MODEL.providerID, id: LOCAL_MODEL.modelID }
  await writeFile(localBack, JSON.stringify(back))
  await localOpencode(['import', localBack])
  const imported = epochMs()
  const finished = (await times(d.backFile))?.mtime ?? NaN
  await ssh(`rm -f '${d.backFile}'`, { allowFail: true })
  const connections = relay.stats().accepted - accepted
  await unlink(localBack).catch(() => {})
  await rm(d.logFile, { force: true })
  return {
    finishedToDiskMs: onDisk - finished,
    finishedToImportedMs: imported - finished,
    dispatchMs: d.end - d.start,
    polls,
    partialPulls,
    connections,
  }
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const t0 = Date.now()
  await setup()
  log(`setup done in ${Date.now() - t0} ms (sshd :${sshd.port}, relay :${relay.port}, serve ${serve.url})`)

  const perCase = 2 * 2 * SAMPLES
  const sessions = []
  const wanted = perCase * RTTS.length + 2
  // A few at a time: the fake LLM and `opencode serve` keep up, and setup stays short.
  while (sessions.length < wanted) {
    const batch = Math.min(3, wanted - sessions.length)
    sessions.push(...(await Promise.all(Array.from({ length: batch }, () => makeSession()))))
  }
  log(`${sessions.length} sessions with history ready at ${Date.now() - t0} ms`)
  const nextSession = () => sessions.shift()

  // One untimed run of each side: page cache, opencode's first-start work on both sides.
  await runOurs(nextSession(), 'one-way')
  await waitRemoteIdle()
  await runBaselineOneWay(nextSession())
  await waitRemoteIdle()
  log(`warm-up done at ${Date.now() - t0} ms`)

  const results = []
  for (const rtt of RTTS) {
    relay.setDelay(rtt / 2)
    const oneWay = { ours: [], baseline: [] }
    const roundTrip = { ours: [], baseline: [] }
    for (let i = 0; i < SAMPLES; i++) {
      const order = i % 2 ? ['baseline', 'ours'] : ['ours', 'baseline']
      for (const side of order) {
        const r =
          side === 'ours' ? await runOurs(nextSession(), 'one-way') : await runBaselineOneWay(nextSession())
        oneWay[side].push(r)
        await waitRemoteIdle()
        log(`rtt=${rtt} one-way ${side} #${i + 1}: ${JSON.stringify(r)}`)
      }
    }
    for (let i = 0; i < SAMPLES; i++) {
      const order = i % 2 ? ['baseline', 'ours'] : ['ours', 'baseline']
      for (const side of order) {
        const r =
          side === 'ours'
            ? await runOurs(nextSession(), 'round-trip')
            : await runBaselineRoundTrip(nextSession())
        roundTrip[side].push(r)
        await waitRemoteIdle()
        log(`rtt=${rtt} round-trip ${side} #${i + 1}: ${JSON.stringify(r)}`)
      }
    }
    results.push({ rtt, oneWay, roundTrip })
  }

  const lines = []
  const summary = []
  for (const { rtt, oneWay, roundTrip } of results) {
    const ours = median(oneWay.ours.map((r) => r.elapsedMs))
    const base = median(oneWay.baseline.map((r) => r.elapsedMs))
    const baseLaunch = median(oneWay.baseline.map((r) => r.launchMs))
    const phases = {}
    for (const k of Object.keys(oneWay.ours[0]?.phases ?? {})) {
      phases[k] = r1(median(oneWay.ours.map((r) => r.phases?.[k])))
    }
    const baselineSteps = {}
    for (const k of Object.keys(oneWay.baseline[0]?.steps ?? {})) {
      baselineSteps[k] = r1(median(oneWay.baseline.map((r) => r.steps?.[k])))
    }
    lines.push({
      case: `dispatch-one-way rtt=${rtt}ms`,
      ours_ms: r1(ours),
      // The fair baseline ends when the seed's remote run starts; its last ssh only returns when the run ends.
      baseline_ms: r1(baseLaunch),
      ratio: r3(ours / baseLaunch),
      baseline_to_last_ssh_ms: r1(base),
      ratio_to_last_ssh: r3(ours / base),
      ours_dispatch_ms: r1(median(oneWay.ours.map((r) => r.timings.dispatchMs))),
      ours_phases_ms: phases,
      baseline_steps_ms: baselineSteps,
      connections: {
        ours: median(oneWay.ours.map((r) => r.connections)),
        baseline: median(oneWay.baseline.map((r) => r.connections)),
      },
      samples: {
        ours: oneWay.ours.map((r) => r1(r.elapsedMs)),
        baseline: oneWay.baseline.map((r) => r1(r.elapsedMs)),
      },
    })
    const target = rtt === 0 ? TARGETS.dispatch0 : TARGETS.dispatch50
    summary.push([
      `dispatch ratio, rtt=${rtt}ms (baseline to its remote launch)`,
      `<= ${target}`,
      r3(ours / baseLaunch),
      ours / baseLaunch <= target,
    ])

    const oursVerified = median(roundTrip.ours.map((r) => r.timings.finishedToVerifiedMs))
    const baseDisk = median(roundTrip.baseline.map((r) => r.finishedToDiskMs))
    lines.push({
      case: `round-trip finished->verified rtt=${rtt}ms`,
      ours_ms: r1(oursVerified),
      baseline_ms: r1(baseDisk),
      ratio: r3(oursVerified / baseDisk),
      samples: {
        ours: roundTrip.ours.map((r) => r1(r.timings.finishedToVerifiedMs)),
        baseline: roundTrip.baseline.map((r) => r1(r.finishedToDiskMs)),
      },
      baseline_polls: roundTrip.baseline.map((r) => r.polls),
      baseline_partial_pulls: roundTrip.baseline.reduce((a, r) => a + r.partialPulls, 0),
    })
    summary.push([
      `ours finished->verified, rtt=${rtt}ms`,
      `<= ${TARGETS.verifiedMs} ms`,
      r1(oursVerified),
      oursVerified <= TARGETS.verifiedMs,
    ])

    const oursReturned = median(roundTrip.ours.map((r) => r.timings.finishedToReturnMs))
    const baseImported = median(roundTrip.baseline.map((r) => r.finishedToImportedMs))
    lines.push({
      case: `round-trip finished->returned rtt=${rtt}ms`,
      ours_ms: r1(oursReturned),
      baseline_ms: r1(baseImported),
      ratio: r3(oursReturned / baseImported),
      samples: {
        ours: roundTrip.ours.map((r) => r1(r.timings.finishedToReturnMs)),
        baseline: roundTrip.baseline.map((r) => r1(r.finishedToImportedMs)),
      },
      ours_round_trip_dispatch_ms: r1(median(roundTrip.ours.map((r) => r.timings.dispatchMs))),
      baseline_round_trip_dispatch_ms: r1(median(roundTrip.baseline.map((r) => r.dispatchMs))),
      connections: {
        ours: median(roundTrip.ours.map((r) => r.connections)),
        baseline: median(roundTrip.baseline.map((r) => r.connections)),
      },
    })
  }

  // What the user waits for: the round trip case of the TUI end-to-end test (the real TUI in tmux) prints
  // remote finished -> the text on screen. BENCH_TUI=0 skips it (it needs tmux and ~2 min).
  if (process.env.BENCH_TUI !== '0') {
    const visible = await tuiVisibleMs()
    lines.push({ case: 'round-trip finished->visible in the TUI rtt=0ms', ours_ms: visible ?? null })
    summary.push([
      'ours finished->visible in the TUI, rtt=0ms',
      `<= ${TARGETS.visibleMs} ms`,
      visible ?? 'not measured',
      visible !== undefined && visible <= TARGETS.visibleMs,
    ])
  }

  for (const l of lines) process.stdout.write(`BENCH ${JSON.stringify(l)}\n`)
  process.stdout.write(`\nSummary (median of ${SAMPLES}; total ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`)
  const rows = [
    ['target', 'goal', 'measured', ''],
    ...summary.map(([a, b, c, ok]) => [a, b, String(c), ok ? 'MET' : 'MISSED']),
  ]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  for (const r of rows) process.stdout.write(`  ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}\n`)
}

/** Run the TUI test's round trip case and read the figure it prints (undefined when it did not run). */
async function tuiVisibleMs() {
  log('TUI: remote finished -> visible (node --test __test__/tui.test.mjs, round trip case)')
  const test = path.join(repoRoot, '__test__', 'tui.test.mjs')
  const out = await exec(process.execPath, ['--test', '--test-name-pattern=round trip', test], {
    cwd: repoRoot,
    timeoutMs: 600_000,
  }).catch((error) => ({ stdout: String(error.stdout ?? ''), failed: error.message }))
  if (out.failed) log(`TUI case failed: ${out.failed.slice(0, 2000)}`)
  const m = /TUI_VISIBLE remote finished -> visible in the TUI: (\d+) ms/.exec(out.stdout)
  return m ? Number(m[1]) : undefined
}

let exitCode = 0
try {
  await main()
} catch (err) {
  process.stderr.write(`bench crashed: ${err?.stack ?? err}\n`)
  exitCode = 1
} finally {
  await teardown()
}
process.exit(exitCode)
