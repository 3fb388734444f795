// The apply_patch language (plugin/remote/patch.mjs): parsing adds, deletes, updates and moves, applying an
// update's chunks with the built-in's tolerances, and the errors a malformed patch fails with.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { applyChunks, parsePatch, parsePatchOrFail, seekLines } from '../../plugin/remote/patch.mjs'

const patch = (...lines) => ['*** Begin Patch', ...lines, '*** End Patch'].join('\n')
const chunk = (fields) => ({ context: undefined, oldLines: [], newLines: [], endOfFile: false, ...fields })

describe('parsePatch', () => {
  test('parses an added file from its + lines', () => {
    assert.deepEqual(parsePatch(patch('*** Add File: src/new.txt', '+one', '+', '+three')), [
      { type: 'add', path: 'src/new.txt', contents: 'one\n\nthree' },
    ])
  })

  test('parses a deleted file', () => {
    assert.deepEqual(parsePatch(patch('*** Delete File: old.txt')), [{ type: 'delete', path: 'old.txt' }])
  })

  test('parses an update into chunks of old and new lines, with the @@ context', () => {
    const hunks = parsePatch(
      patch('*** Update File: app.py', '@@ def greet():', ' keep', '-old', '+new', '@@', '-gone', '+added'),
    )
    assert.deepEqual(hunks, [
      {
        type: 'update',
        path: 'app.py',
        chunks: [
          chunk({ context: 'def greet():', oldLines: ['keep', 'old'], newLines: ['keep', 'new'] }),
          chunk({ oldLines: ['gone'], newLines: ['added'] }),
        ],
      },
    ])
  })

  test('parses a move and an end-of-file chunk', () => {
    const hunks = parsePatch(
      patch('*** Update File: a.txt', '*** Move to: b/a.txt', '@@', '-last', '+final', '*** End of File'),
    )
    assert.deepEqual(hunks, [
      {
        type: 'update',
        path: 'a.txt',
        movePath: 'b/a.txt',
        chunks: [chunk({ oldLines: ['last'], newLines: ['final'], endOfFile: true })],
      },
    ])
  })

  test('parses several files in order', () => {
    const hunks = parsePatch(
      patch('*** Add File: a', '+x', '*** Delete File: b', '*** Update File: c', '@@', '-y', '+z'),
    )
    assert.deepEqual(
      hunks.map((h) => [h.type, h.path]),
      [
        ['add', 'a'],
        ['delete', 'b'],
        ['update', 'c'],
      ],
    )
  })

  test('accepts CRLF line endings and a heredoc wrapper', () => {
    const expected = [{ type: 'add', path: 'a.txt', contents: 'hi' }]
    assert.deepEqual(parsePatch(patch('*** Add File: a.txt', '+hi').replaceAll('\n', '\r\n')), expected)
    assert.deepEqual(parsePatch(`cat <<'EOF'\n${patch('*** Add File: a.txt', '+hi')}\nEOF`), expected)
    assert.deepEqual(parsePatch(`<<EOF\n${patch('*** Add File: a.txt', '+hi')}\nEOF\n`), expected)
  })

  test('skips a header without a path', () => {
    assert.deepEqual(parsePatch(patch('*** Add File: ', '+x')), [])
  })

  test('fails without the Begin/End markers', () => {
    const message = 'Invalid patch format: missing Begin/End markers'
    assert.throws(() => parsePatch('*** Add File: a\n+x'), { message })
    assert.throws(() => parsePatch('*** End Patch\n*** Begin Patch'), { message })
  })
})

describe('parsePatchOrFail', () => {
  test('returns the hunks of a good patch', () => {
    assert.equal(parsePatchOrFail(patch('*** Delete File: x')).length, 1)
  })

  test('names a patch without markers as a failed verification', () => {
    assert.throws(() => parsePatchOrFail('garbage'), {
      message: 'apply_patch verification failed: Error: Invalid patch format: missing Begin/End markers',
    })
  })

  test('rejects an empty patch', () => {
    assert.throws(() => parsePatchOrFail('*** Begin Patch\n*** End Patch'), {
      message: 'patch rejected: empty patch',
    })
    assert.throws(() => parsePatchOrFail('*** Begin Patch\r\n*** End Patch\r\n'), {
      message: 'patch rejected: empty patch',
    })
  })

  test('fails a patch with markers but no file sections', () => {
    assert.throws(() => parsePatchOrFail(patch('just words', '+x')), {
      message: 'apply_patch verification failed: no hunks found',
    })
  })
})

describe('applyChunks', () => {
  test('replaces the old lines and ends the file in a newline', () => {
    const chunks = [chunk({ oldLines: ['b'], newLines: ['B', 'B2'] })]
    assert.equal(applyChunks('a\nb\nc', chunks, 'f'), 'a\nB\nB2\nc\n')
  })

  test('applies several chunks, each after the one before', () => {
    const chunks = [
      chunk({ oldLines: ['x'], newLines: ['first'] }),
      chunk({ oldLines: ['x'], newLines: ['second'] }),
    ]
    assert.equal(applyChunks('x\ny\nx\n', chunks, 'f'), 'first\ny\nsecond\n')
  })

  test('seeks the @@ context line first', () => {
    const chunks = [chunk({ context: 'def b():', oldLines: ['  pass'], newLines: ['  return 2'] })]
    const text = 'def a():\n  pass\ndef b():\n  pass\n'
    assert.equal(applyChunks(text, chunks, 'f'), 'def a():\n  pass\ndef b():\n  return 2\n')
  })

  test('a chunk with only added lines appends them at the end', () => {
    assert.equal(applyChunks('a\n', [chunk({ newLines: ['b', 'c'] })], 'f'), 'a\nb\nc\n')
  })

  test('an end-of-file chunk matches at the end of the file first', () => {
    const text = 'end\nmiddle\nend\n'
    const atEnd = [chunk({ oldLines: ['end'], newLines: ['END'], endOfFile: true })]
    const anywhere = [chunk({ oldLines: ['end'], newLines: ['END'] })]
    assert.equal(applyChunks(text, atEnd, 'f'), 'end\nmiddle\nEND\n')
    assert.equal(applyChunks(text, anywhere, 'f'), 'END\nmiddle\nend\n')
  })

  test('a trailing empty old line that is not in the file is dropped (with the new one)', () => {
    const chunks = [chunk({ oldLines: ['a', ''], newLines: ['b', ''] })]
    assert.equal(applyChunks('a', chunks, 'f'), 'b\n')
  })

  test('tolerates trailing, then surrounding whitespace differences', () => {
    const chunks = [chunk({ oldLines: ['value = 1'], newLines: ['value = 2'] })]
    assert.equal(applyChunks('value = 1   \n', chunks, 'f'), 'value = 2\n')
    assert.equal(applyChunks('\t  value = 1\n', chunks, 'f'), 'value = 2\n')
  })

  test('tolerates typographic quotes, dashes, ellipses and non-breaking spaces', () => {
    const chunks = [chunk({ oldLines: [`print("it's - wait...")`], newLines: ['print("ok")'] })]
    const text = 'print(\u201Cit\u2019s\u00A0\u2013 wait\u2026\u201D)\n'
    assert.equal(applyChunks(text, chunks, 'f'), 'print("ok")\n')
  })

  test('fails naming a context line it cannot find', () => {
    const chunks = [chunk({ context: 'def missing():', oldLines: ['x'], newLines: ['y'] })]
    assert.throws(() => applyChunks('x\n', chunks, 'src/a.py'), {
      message: "Failed to find context 'def missing():' in src/a.py",
    })
  })

  test('fails naming the old lines it cannot find', () => {
    const chunks = [chunk({ oldLines: ['one', 'two'], newLines: [] })]
    assert.throws(() => applyChunks('one\nthree\n', chunks, 'a.txt'), {
      message: 'Failed to find expected lines in a.txt:\none\ntwo',
    })
  })
})

describe('seekLines', () => {
  test('finds the first place from start, or -1', () => {
    const lines = ['a', 'b', 'a', 'b']
    assert.equal(seekLines(lines, ['a', 'b'], 0, false), 0)
    assert.equal(seekLines(lines, ['a', 'b'], 1, false), 2)
    assert.equal(seekLines(lines, ['a', 'b'], 0, true), 2)
    assert.equal(seekLines(lines, ['c'], 0, false), -1)
  })

  test('prefers an exact match over a looser one further up', () => {
    assert.equal(seekLines([' x', 'x'], ['x'], 0, false), 1)
  })
})
