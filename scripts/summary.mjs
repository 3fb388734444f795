// Prints the robustness summary table from the JSON lines the tests appended to $OCR_SUMMARY_FILE
// (see __test__/support/summary.mjs), plus one failure row per failed test (scripts/summary-reporter.mjs).
// Exit code 1 when any case failed or lost data; the verdict then says how many and which.
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
  .filter(firstFailureOnly(new Set()))

/**
 * A failed case may be recorded twice, by the case itself and by the reporter for its failed test: keep
 * the first failure row of each case, so the table counts cases, not reports.
 */
function firstFailureOnly(seen) {
  return (row) => {
    if (row.ok !== false) return true
    const key = `${row.kind}\0${row.name}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  }
}

const kinds = ['fault', 'hostile', 'secret', 'load', 'fuzz', 'test']
const sum = (list, key) => list.reduce((n, r) => n + (r[key] ?? 0), 0)
/** A case held when its test passed and it lost or duplicated nothing. */
const held = (r) => r.ok === true && !(r.lost > 0) && !(r.duplicated > 0)
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
      pad(list.filter(held).length, 6),
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
  console.log(`  ${held(r) ? 'ok  ' : 'FAIL'} [${r.kind}] ${r.name}${extra}`)
}
const bad = rows.filter((r) => !held(r))
if (bad.length === 0) {
  console.log('\nnothing lost, nothing duplicated, every case held')
} else {
  const lost = sum(rows, 'lost')
  const duplicated = sum(rows, 'duplicated')
  console.log(
    `\nFAILED: ${bad.length} case(s) did not hold` +
      (lost || duplicated ? ` (${lost} message(s) lost, ${duplicated} duplicated)` : '') +
      ':\n' +
      bad.map((r) => `  [${r.kind}] ${r.name}`).join('\n'),
  )
}
process.exit(bad.length === 0 ? 0 : 1)
