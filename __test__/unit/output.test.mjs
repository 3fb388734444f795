// What the remote tools show the model (plugin/remote/output.mjs): read's pages and notes, bash's tail and
// notes, list's tree, glob's and grep's results, in the OpenCode 1.18.33 built-ins' formats.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  bashOutput,
  directoryOutput,
  fileOutput,
  globOutput,
  grepOutput,
  lineCounts,
  missingFileMessage,
  pageOf,
  renderTree,
  tailOf,
} from '../../plugin/remote/output.mjs'

describe('fileOutput', () => {
  test('numbers the lines in a <content> frame and ends with the total', () => {
    const shown = fileOutput({ path: '/r/a.txt', lines: ['one', 'two'], totalLines: 2 }, 1, 'web1')
    assert.equal(
      shown.output,
      '<path>/r/a.txt</path>\n<type>file</type>\n<content>\n1: one\n2: two\n\n(End of file - total 2 lines)\n</content>',
    )
    assert.deepEqual(shown.metadata, { preview: 'one\ntwo', truncated: undefined, loaded: [], host: 'web1' })
  })

  test('a page that stops before the end says where to continue', () => {
    const result = { path: '/r/a', lines: ['c', 'd'], totalLines: 10, truncated: true }
    const shown = fileOutput(result, 3, 'h')
    assert.match(
      shown.output,
      /\n3: c\n4: d\n\n\(Showing lines 3-4 of 10\. Use offset=5 to continue\.\)\n<\/content>$/,
    )
    assert.equal(shown.metadata.truncated, true)
  })

  test('a page over 50 KB is capped and says so', () => {
    const lines = Array.from({ length: 1000 }, () => 'x'.repeat(100))
    const shown = fileOutput({ path: '/r/big', lines, totalLines: 1000 }, 1, 'h')
    const last = Number(/Showing lines 1-(\d+)\./.exec(shown.output)[1])
    assert.ok(last > 400 && last < 1000, `capped at line ${last}`)
    assert.match(
      shown.output,
      new RegExp(
        `\\(Output capped at 50 KB\\. Showing lines 1-${last}\\. Use offset=${last + 1} to continue\\.\\)`,
      ),
    )
    assert.ok(Buffer.byteLength(shown.output) <= 50 * 1024)
    assert.equal(shown.metadata.truncated, true)
  })

  test('an empty file reads as zero lines', () => {
    const shown = fileOutput({ path: '/r/e', lines: [], totalLines: 0 }, 1, 'h')
    assert.match(shown.output, /<content>\n\n\n\(End of file - total 0 lines\)\n<\/content>$/)
  })

  test('fails on an offset past the end and on a binary file', () => {
    assert.throws(() => fileOutput({ path: '/r/a', lines: [], totalLines: 3 }, 9, 'h'), {
      message: 'Offset 9 is out of range for this file (3 lines)',
    })
    assert.throws(() => fileOutput({ path: '/r/b.bin', binary: true }, 1, 'h'), {
      message: 'Cannot read binary file: /r/b.bin',
    })
  })
})

describe('pageOf', () => {
  test('cuts a line over 2000 characters with a note', () => {
    const page = pageOf(['y'.repeat(2500)], 1, 1e6)
    assert.equal(page.lines[0], `${'y'.repeat(2000)}... (line truncated to 2000 chars)`)
    assert.equal(page.cut, false)
  })

  test('stops at the byte budget of numbered lines', () => {
    // "1: abc\n" and "2: abc\n" are 7 bytes each.
    assert.deepEqual(pageOf(['abc', 'abc', 'abc'], 1, 14), { lines: ['abc', 'abc'], cut: true })
    assert.deepEqual(pageOf(['abc', 'abc'], 1, 14), { lines: ['abc', 'abc'], cut: false })
  })
})

describe('directoryOutput', () => {
  const list = {
    path: '/r/src',
    entries: [
      { name: 'main.rs', kind: 'file' },
      { name: 'bin', kind: 'dir' },
      { name: 'lib.rs', kind: 'file' },
    ],
  }

  test('lists sorted entries, directories with a slash, in an <entries> frame', () => {
    const shown = directoryOutput(list, 1, 2000, 'h')
    assert.equal(
      shown.output,
      '<path>/r/src</path>\n<type>directory</type>\n<entries>\nbin/\nlib.rs\nmain.rs\n\n(3 entries)\n</entries>',
    )
    assert.equal(shown.metadata.truncated, false)
  })

  test('a page of the entries says where to continue', () => {
    const shown = directoryOutput(list, 2, 1, 'h')
    assert.equal(
      shown.output,
      "<path>/r/src</path>\n<type>directory</type>\n<entries>\nlib.rs\n\n(Showing 1 of 3 entries. Use 'offset' parameter to read beyond entry 3)\n</entries>",
    )
    assert.equal(shown.metadata.truncated, true)
  })
})

describe('missingFileMessage', () => {
  test('suggests up to three similar names from the same directory', () => {
    const names = ['config.json', 'Config.yaml', 'other', 'conf', 'config.json.bak']
    assert.equal(
      missingFileMessage('/r/config', names),
      'File not found: /r/config\n\nDid you mean one of these?\n/r/config.json\n/r/Config.yaml\n/r/conf',
    )
  })

  test('says only "File not found" without similar names', () => {
    assert.equal(missingFileMessage('/r/x.txt', ['other']), 'File not found: /r/x.txt')
  })
})

test('lineCounts counts added and removed lines', () => {
  assert.deepEqual(lineCounts('a\nb\nc', 'a\nB\nc\nd'), { additions: 2, deletions: 1 })
  assert.deepEqual(lineCounts('', 'x'), { additions: 1, deletions: 1 })
})

test('renderTree: the base, then directories before files, each sorted, two spaces a level', () => {
  const files = ['/r/src/z.js', '/r/b.txt', '/r/src/lib/a.js', '/r/a.txt', '/r/src/a.js']
  assert.equal(
    renderTree('/r', files),
    ['/r/', '  src/', '    lib/', '      a.js', '    a.js', '    z.js', '  a.txt', '  b.txt', ''].join('\n'),
  )
  assert.equal(renderTree('/r', []), '/r/\n')
})

describe('globOutput', () => {
  test('lists the files, or says none were found', () => {
    assert.equal(globOutput({ files: ['/r/a.js', '/r/b.js'], truncated: false }), '/r/a.js\n/r/b.js')
    assert.equal(globOutput({ files: [], truncated: false }), 'No files found')
  })

  test('notes that the results were cut at 100', () => {
    assert.equal(
      globOutput({ files: ['/r/a.js'], truncated: true }),
      '/r/a.js\n\n(Results are truncated: showing first 100 results. Consider using a more specific path or pattern.)',
    )
  })
})

describe('grepOutput', () => {
  const matches = [
    { path: '/r/a.js', line: 3, text: 'const x = 1' },
    { path: '/r/a.js', line: 9, text: 'x++' },
    { path: '/r/b.js', line: 1, text: 'x' },
  ]

  test('counts the matches and groups them by file', () => {
    assert.equal(
      grepOutput({ matches, truncated: false }),
      'Found 3 matches\n/r/a.js:\n  Line 3: const x = 1\n  Line 9: x++\n\n/r/b.js:\n  Line 1: x',
    )
  })

  test('notes more matches when truncated, or says none were found', () => {
    assert.equal(
      grepOutput({ matches: matches.slice(2), truncated: true }),
      'Found 1 matches (more matches available)\n/r/b.js:\n  Line 1: x\n\n(Results truncated. Consider using a more specific path or pattern.)',
    )
    assert.equal(grepOutput({ matches: [], truncated: false }), 'No files found')
  })
})

describe('tailOf', () => {
  test('keeps text within the limits as it is', () => {
    assert.deepEqual(tailOf('a\nb\nc', 3, 100), { text: 'a\nb\nc', cut: false })
  })

  test('keeps the last lines within the line limit', () => {
    assert.deepEqual(tailOf('a\nb\nc\nd', 2, 100), { text: 'c\nd', cut: true })
  })

  test('keeps the last whole lines within the byte limit', () => {
    assert.deepEqual(tailOf('aaaa\nbb\ncc', 10, 5), { text: 'bb\ncc', cut: true })
  })

  test('keeps the end of a last line longer than the byte limit', () => {
    assert.deepEqual(tailOf('x\n0123456789', 10, 4), { text: '6789', cut: true })
  })
})

describe('bashOutput', () => {
  const run = (result, timeoutMs = 120_000) => ({ command: 'make', timeoutMs, result, host: 'web1' })
  const noSave = async () => assert.fail('nothing to save')

  test('shows the output with the exit code in the metadata', async () => {
    const shown = await bashOutput(run({ stdout: 'built\n', stderr: '', exitCode: 2 }), noSave)
    assert.deepEqual(shown, {
      title: 'make',
      output: 'built\n',
      metadata: { output: 'built\n', exit: 2, truncated: false, host: 'web1' },
    })
  })

  test('says "(no output)" for a silent command', async () => {
    const shown = await bashOutput(run({ stdout: '', stderr: '', exitCode: null }), noSave)
    assert.equal(shown.output, '(no output)')
    assert.equal(shown.metadata.exit, null)
  })

  test('adds shell_metadata notes for a timeout and an abort', async () => {
    const shown = await bashOutput(run({ stdout: 'x', timedOut: true, aborted: true }, 5000), noSave)
    assert.equal(
      shown.output,
      'x\n\n<shell_metadata>\nshell tool terminated command after exceeding timeout 5000 ms. If this command is expected to take longer and is not waiting for interactive input, retry with a larger timeout value in milliseconds.\nUser aborted the command\n</shell_metadata>',
    )
  })

  test('shows the tail of a long output and saves all of it', async () => {
    const all = Array.from({ length: 2500 }, (_, i) => `line ${i}`).join('\n')
    let saved
    const shown = await bashOutput(run({ stdout: all, exitCode: 0 }), async (text) => {
      saved = text
      return '/data/tool-output/tool_1'
    })
    assert.equal(saved, all)
    // 2000 lines less 12 left for the notes.
    const kept = Array.from({ length: 1988 }, (_, i) => `line ${512 + i}`).join('\n')
    assert.equal(
      shown.output,
      `...output truncated...\n\nFull output saved to: /data/tool-output/tool_1\n\n${kept}`,
    )
    assert.equal(shown.metadata.outputPath, '/data/tool-output/tool_1')
    assert.equal(shown.metadata.truncated, true)
  })

  test('an output the addon already cut and saved is not saved again', async () => {
    const result = { stdout: 'head\ntail', truncated: true, outputPath: '/saved/full', exitCode: 0 }
    const shown = await bashOutput(run(result), noSave)
    assert.equal(shown.output, '...output truncated...\n\nFull output saved to: /saved/full\n\nhead\ntail')
    assert.equal(shown.metadata.outputPath, '/saved/full')
  })

  test('the preview keeps the last 30000 characters', async () => {
    const all = 'z'.repeat(40_000)
    const shown = await bashOutput(run({ stdout: all, exitCode: 0 }), async () => '/saved')
    assert.equal(shown.metadata.output, `...\n\n${'z'.repeat(30_000)}`)
  })
})
