// A `node --test` reporter that records every failed test as a failure row of the robustness summary
// ($OCR_SUMMARY_FILE, see __test__/support/summary.mjs). A test records its own row only after its checks
// passed, so without this a test that failed recorded nothing and the table still read "every case held".
// It writes nothing to its own destination; scripts/test.sh runs it next to the usual spec reporter.
import { appendFileSync } from 'node:fs'
import path from 'node:path'

/** The summary kind of a test file's cases; any other file's failures count as `test`. */
const KINDS = { faults: 'fault', hostile: 'hostile', secrets: 'secret', load: 'load' }

export function kindOf(file) {
  const base = path.basename(file ?? '').replace(/\.test\.m?js$/, '')
  return KINDS[base] ?? 'test'
}

/** The summary row for a `test:fail` event, or null for a suite that failed only through its tests. */
export function failureRow(data) {
  const error = data.details?.error
  if (error?.failureType === 'subtestsFailed') return null
  const cause = error?.cause ?? error
  const message = String(cause?.message ?? cause ?? 'failed').split('\n')[0]
  return {
    kind: kindOf(data.file),
    name: data.name,
    ok: false,
    userSees: `test failed (${path.basename(data.file ?? '?')}): ${message.slice(0, 200)}`,
  }
}

export default async function* summaryReporter(source) {
  const file = process.env.OCR_SUMMARY_FILE
  for await (const event of source) {
    if (event.type !== 'test:fail' || !file) continue
    const row = failureRow(event.data)
    if (row) appendFileSync(file, `${JSON.stringify({ ...row, at: new Date().toISOString() })}\n`)
  }
  yield ''
}
