// Watches every process on this machine while a test runs, to prove a secret never shows up in a process's
// arguments or environment. The remote host of the tests is a local Unix user, so its processes (sshd
// sessions, the stub, the shell lines we run there) are visible here too. Secrets (the stub token) are only
// known after the run, so the sampler keeps every distinct command line and environment it saw and the test
// searches them afterwards.
//
// Run as a child: `node proc-sampler.mjs <out.json> <intervalMs>`; it samples until its stdin closes, then
// writes {passes, elapsedMs, processes, cmdlines, environs} to out.json and exits. It prints `ready` once
// the first pass is done.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'

const [out, intervalArg = '2'] = process.argv.slice(2)
const intervalMs = Number(intervalArg)
const cmdlines = new Set()
const environs = new Set()
/** pid -> cmdline last seen, so an environment is read again only after an exec. */
const seen = new Map()
let passes = 0
const started = Date.now()

function read(file) {
  try {
    return readFileSync(file, 'latin1')
  } catch {
    return null // gone, or a kernel thread
  }
}

function sample() {
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue // not a pid
    const cmdline = read(`/proc/${name}/cmdline`)
    if (!cmdline) continue
    cmdlines.add(cmdline)
    if (seen.get(name) === cmdline) continue
    seen.set(name, cmdline)
    const environ = read(`/proc/${name}/environ`)
    if (environ) environs.add(environ)
  }
  passes++
}

let stopped = false
function stop() {
  if (stopped) return
  stopped = true
  writeFileSync(
    out,
    JSON.stringify({
      passes,
      elapsedMs: Date.now() - started,
      processes: seen.size,
      cmdlines: [...cmdlines],
      environs: [...environs],
    }),
  )
  process.exit(0)
}

process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
const tick = () => {
  if (stopped) return
  sample()
  setTimeout(tick, intervalMs)
}
tick()
process.stdout.write('ready\n') // after the first full pass
