// Detached watchdog started by proc.mjs. It reads JSON lines ({op:'add'|'del', id, item}) on stdin; when stdin
// closes (the test process exited or was SIGKILLed) it destroys whatever is still registered: process trees,
// processes of a throw-away uid, throw-away users, mounts, network namespaces and temp dirs.
import { spawnSync } from 'node:child_process'
import { descendants, killUid, removeNetns, rmrf, signalAll } from './proc.mjs'

process.on('SIGINT', () => {})
process.on('SIGHUP', () => {})

const items = new Map()
let buf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buf += chunk
  let nl
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl)
    buf = buf.slice(nl + 1)
    try {
      const msg = JSON.parse(line)
      if (msg.op === 'add') items.set(msg.id, msg.item)
      else if (msg.op === 'del') items.delete(msg.id)
    } catch {
      // ignore garbage
    }
  }
})
process.stdin.on('close', reap)
process.stdin.on('end', reap)

let reaped = false
function reap() {
  if (reaped) return
  reaped = true
  const all = [...items.values()]
  for (const it of all) if (it.tree) signalAll([it.tree, ...descendants(it.tree)], 'SIGKILL')
  for (const it of all) if (it.pid) signalAll([it.pid], 'SIGKILL')
  for (const it of all) if (it.uid) killUid(it.uid)
  for (const it of all) if (it.user) spawnSync('userdel', [it.user], { stdio: 'ignore' })
  for (const it of all) if (it.mount) spawnSync('umount', ['-l', it.mount], { stdio: 'ignore' })
  for (const it of all) if (it.netns) removeNetns(it.netns)
  for (const it of all) if (it.dir) rmrf(it.dir)
  process.exit(0)
}
