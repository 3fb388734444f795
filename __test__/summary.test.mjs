// The robustness summary (scripts/summary.mjs) and its reporter (scripts/summary-reporter.mjs): a failed
// test shows as a failure row and the verdict says so, never "every case held".
import assert from 'node:assert/strict'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { exec } from './harness/proc.mjs'
import { repoRoot } from './support/package.mjs'

const SUMMARY = path.join(repoRoot, 'scripts', 'summary.mjs')
const REPORTER = path.join(repoRoot, 'scripts', 'summary-reporter.mjs')
const held = {
  kind: 'hostile',
  name: 'hostile names are refused',
  ok: true,
  inputs: 12,
  lost: 0,
  duplicated: 0,
}
const lines = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'
/** The environment of a child `node`, without the test runner's own marker for its children. */
const childEnv = (extra) => {
  const env = { ...process.env, ...extra }
  delete env.NODE_TEST_CONTEXT
  return env
}

async function summary(rows) {
  const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'ocr-summary-')), 'summary.jsonl')
  await writeFile(file, lines(rows))
  return exec(process.execPath, [SUMMARY, file], { allowFail: true })
}

test('every case held: the verdict says so and the exit code is 0', async () => {
  const out = await summary([held])
  assert.equal(out.code, 0, out.stdout)
  assert.match(out.stdout, /nothing lost, nothing duplicated, every case held/)
})

test('a failed test is a failure row, and the verdict names it', async () => {
  const failed = { kind: 'hostile', name: 'the new message arrived', ok: false, userSees: 'test failed' }
  const out = await summary([held, failed])
  assert.equal(out.code, 1)
  assert.match(out.stdout, /^hostile\s+2\s+1\s/m, 'two cases, one held')
  assert.match(out.stdout, /FAIL \[hostile\] the new message arrived/)
  assert.match(out.stdout, /FAILED: 1 case\(s\) did not hold:\n {2}\[hostile\] the new message arrived/)
  assert.doesNotMatch(out.stdout, /every case held/)
})

test('a case that passed but lost a message does not hold', async () => {
  const out = await summary([{ ...held, kind: 'fault', name: 'cut', lost: 1 }])
  assert.equal(out.code, 1)
  assert.match(out.stdout, /FAIL \[fault\] cut/)
  assert.match(out.stdout, /1 message\(s\) lost/)
})

test('the reporter turns a failing test into a failure row of its file kind', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ocr-reporter-'))
  const file = path.join(dir, 'summary.jsonl')
  await writeFile(
    path.join(dir, 'hostile.test.mjs'),
    "import { test } from 'node:test'\nimport assert from 'node:assert'\n" +
      "test('holds', () => {})\ntest('the new message arrived', () => assert.fail('no message'))\n",
  )
  const run = await exec(
    process.execPath,
    ['--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=/dev/null', 'hostile.test.mjs'],
    { cwd: dir, env: childEnv({ OCR_SUMMARY_FILE: file }), allowFail: true },
  )
  assert.notEqual(run.code, 0, 'the inner test run failed')
  const rows = (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  assert.deepEqual(
    rows.map((r) => [r.kind, r.name, r.ok]),
    [['hostile', 'the new message arrived', false]],
  )
  assert.match(rows[0].userSees, /no message/)
  const out = await exec(process.execPath, [SUMMARY, file], { allowFail: true })
  assert.equal(out.code, 1)
  assert.match(out.stdout, /FAIL \[hostile\] the new message arrived/)
})

test('a case recorded by itself and by the reporter counts once', async () => {
  const failed = { kind: 'fault', name: 'sshd restarted', ok: false, userSees: 'test failed: no process' }
  const reported = { ...failed, userSees: 'test failed (faults.test.mjs): no process' }
  const out = await summary([held, failed, reported])
  assert.equal(out.code, 1)
  assert.match(out.stdout, /^fault\s+1\s+0\s/m, 'one fault case, not two')
  assert.equal(out.stdout.match(/FAIL \[fault\] sshd restarted/g).length, 1, out.stdout)
  assert.match(out.stdout, /FAILED: 1 case\(s\) did not hold:/)
})
