// The edit tool's replacement (plugin/remote/edit-logic.mjs): exact-once, replaceAll, line endings, the
// line-trimmed fallback and the two errors the model sees.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { lineTrimmedMatches, replaceIn } from '../../plugin/remote/edit-logic.mjs'

const NOT_FOUND =
  'Could not find oldString in the file. It must match exactly, including whitespace, indentation, and line endings.'
const AMBIGUOUS =
  'Found multiple matches for oldString. Provide more surrounding context to make the match unique.'

describe('replaceIn', () => {
  test('replaces the one exact occurrence', () => {
    assert.equal(replaceIn('a\nb\nc\n', { oldString: 'b', newString: 'B' }), 'a\nB\nc\n')
  })

  test('takes the new string literally (no $& or $1 substitution)', () => {
    assert.equal(replaceIn('x = 1\n', { oldString: '1', newString: '$&$1' }), 'x = $&$1\n')
    assert.equal(replaceIn('a a', { oldString: 'a', newString: '$&', replaceAll: true }), '$& $&')
  })

  test('replaceAll replaces every occurrence', () => {
    assert.equal(
      replaceIn('foo bar foo\nfoo', { oldString: 'foo', newString: 'baz', replaceAll: true }),
      'baz bar baz\nbaz',
    )
  })

  test('replaceAll with a single occurrence replaces it', () => {
    assert.equal(replaceIn('one two', { oldString: 'two', newString: '2', replaceAll: true }), 'one 2')
  })

  test("matches and writes in the file's own CRLF line endings", () => {
    const content = 'first\r\nsecond\r\nthird\r\n'
    const after = replaceIn(content, { oldString: 'first\nsecond', newString: 'one\ntwo\nthree' })
    assert.equal(after, 'one\r\ntwo\r\nthree\r\nthird\r\n')
  })

  test('turns CRLF in the strings into LF for an LF file', () => {
    assert.equal(replaceIn('a\nb\n', { oldString: 'a\r\nb', newString: 'c\r\nd' }), 'c\nd\n')
  })

  test('falls back to a match that differs only in the whitespace around each line', () => {
    const content = 'function f() {\n    if (x) {\n        go()\n    }\n}\n'
    const after = replaceIn(content, { oldString: 'if (x) {\n  go()\n}', newString: '    if (y) stop()' })
    assert.equal(after, 'function f() {\n    if (y) stop()\n}\n')
  })

  test('the line-trimmed fallback ignores a trailing newline of oldString', () => {
    const after = replaceIn('  a\n  b\nc\n', { oldString: 'a\nb\n', newString: 'z' })
    assert.equal(after, 'z\nc\n')
  })

  test('the line-trimmed fallback replaces every span with replaceAll', () => {
    const after = replaceIn('\tb\nc\n\tb\n', { oldString: '  b', newString: 'X', replaceAll: true })
    assert.equal(after, 'X\nc\nX\n')
  })

  test('fails with "Could not find oldString" when nothing matches', () => {
    assert.throws(() => replaceIn('a\nb\n', { oldString: 'c', newString: 'd' }), { message: NOT_FOUND })
    assert.throws(() => replaceIn('a\nb\n', { oldString: 'c', newString: 'd', replaceAll: true }), {
      message: NOT_FOUND,
    })
  })

  test('fails with "Found multiple matches" when the match is not unique', () => {
    assert.throws(() => replaceIn('x\nx\n', { oldString: 'x', newString: 'y' }), { message: AMBIGUOUS })
  })

  test('fails with "Found multiple matches" when only line-trimmed spans match, more than once each', () => {
    assert.throws(() => replaceIn('  a\nb\n  a\nb\n', { oldString: 'a\nb', newString: 'c' }), {
      message: AMBIGUOUS,
    })
  })
})

describe('lineTrimmedMatches', () => {
  test('returns the spans of the content whose trimmed lines equal the search', () => {
    assert.deepEqual(lineTrimmedMatches('  a\n\tb\nc\n a \nb', 'a\nb'), ['  a\n\tb', ' a \nb'])
  })

  test('returns nothing for an empty search or one longer than the content', () => {
    assert.deepEqual(lineTrimmedMatches('a\nb', ''), [])
    assert.deepEqual(lineTrimmedMatches('a', 'a\nb\nc'), [])
  })
})
