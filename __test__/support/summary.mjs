// Evidence for the robustness summary that `.ci/run` prints: each fault, hostile-input, secrets or load
// test appends one JSON line per case to $OCR_SUMMARY_FILE (nothing is written when it is unset), and
// scripts/summary.mjs turns the file into a table. Record what the test *checked*, after it checked it.
import { appendFileSync } from 'node:fs'

/**
 * @param {{
 *   kind: 'fault' | 'hostile' | 'secret' | 'load' | 'fuzz',
 *   name: string,              // the case, e.g. "link cut 10s during round-trip wait"
 *   ok: boolean,               // did the behaviour the test names hold
 *   inputs?: number,           // hostile inputs tried / requests made in this case
 *   sessionsCompared?: number, // local vs remote sessions compared message by message
 *   messagesCompared?: number,
 *   lost?: number,             // messages missing after the fault (must be 0)
 *   duplicated?: number,       // messages present twice after the fault (must be 0)
 *   userSees?: string,         // what the user is shown (error code or outcome)
 * }} row
 */
export function recordSummary(row) {
  const file = process.env.OCR_SUMMARY_FILE
  if (!file) return
  appendFileSync(file, `${JSON.stringify({ ...row, at: new Date().toISOString() })}\n`)
}
