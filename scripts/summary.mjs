// Prints the robustness summary table from the JSON lines the tests appended to $OCR_SUMMARY_FILE
// (see __test__/support/summary.mjs). Exit code 1 when any recorded case failed or lost data.
import { existsSync, readFileSync } from 'node:fs'

const file = process.argv[2] ?? process.env.OCR_SUMMARY_FILE
if (!file || !existsSync(file)) {
  console.log('robustness summary: no cases recorded')
  process.exit(0)
}
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => JSON.parse(line))

const kinds = ['fault', 'hostile', 'secret', 'load', 'fuzz']
const sum = (list, key) => list.reduce((n, r) => n + (r[key] ?? 0), 0)
const pad = (s, n) => String(s).padEnd(n)

console.log('\n== robustness summary')
console.log(
  [
    pad('kind', 8),
    pad('cases', 6),
    pad('held', 6),
    pad('inputs', 8),
    pad('sessions', 9),
    pad('messages', 9),
    pad('lost', 5),
    'duplicated',
  ].join(' '),
)
for (const kind of kinds) {
  const list = rows.filter((r) => r.kind === kind)
  if (list.length === 0) continue
  console.log(
    [
      pad(kind, 8),
      pad(list.length, 6),
      pad(list.filter((r) => r.ok).length, 6),
      pad(sum(list, 'inputs'), 8),
      pad(sum(list, 'sessionsCompared'), 9),
      pad(sum(list, 'messagesCompared'), 9),
      pad(sum(list, 'lost'), 5),
      sum(list, 'duplicated'),
    ].join(' '),
  )
}
console.log('\ncases:')
for (const r of rows) {
  const extra = r.userSees ? ` — user sees: ${r.userSees}` : ''
  console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} [${r.kind}] ${r.name}${extra}`)
}
const bad = rows.filter((r) => !r.ok || (r.lost ?? 0) > 0 || (r.duplicated ?? 0) > 0)
console.log(
  bad.length === 0 ? '\nnothing lost, nothing duplicated, every case held' : `\n${bad.length} case(s) failed`,
)
process.exit(bad.length === 0 ? 0 : 1)
