// The paths a bash command names (plugin/remote/command-paths.mjs): what the stub is asked to check against
// the workspace root before the command runs.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { commandPaths, shellWords } from '../../plugin/remote/command-paths.mjs'

describe('commandPaths', () => {
  test('finds absolute arguments, not the command word', () => {
    assert.deepEqual(commandPaths('cat /etc/hosts /srv/app/log'), ['/etc/hosts', '/srv/app/log'])
    assert.deepEqual(commandPaths('/usr/bin/env python3 main.py'), [])
  })

  test('leaves out relative paths that stay below the working directory', () => {
    assert.deepEqual(commandPaths('cat src/main.rs ./README.md', 'proj'), [])
  })

  test('resolves a path that climbs with .. against the working directory', () => {
    assert.deepEqual(commandPaths('cat ../secret.txt', 'a/b'), ['a/secret.txt'])
    assert.deepEqual(commandPaths('cat ../../../x', 'a'), ['../../x'])
    assert.deepEqual(commandPaths('cat ../x'), ['../x'])
  })

  test('finds home paths', () => {
    assert.deepEqual(commandPaths('ls ~ ~/notes'), ['~', '~/notes'])
    assert.deepEqual(commandPaths('ls ~alice/x'), [])
  })

  test('finds the directory of cd', () => {
    assert.deepEqual(commandPaths('cd /srv/app && make'), ['/srv/app'])
    assert.deepEqual(commandPaths('cd .. && ls', 'sub'), ['.'])
  })

  test('removes quotes and escapes', () => {
    assert.deepEqual(commandPaths(`cat "/tmp/a b" '/tmp/c d' /tmp/e\\ f`), [
      '/tmp/a b',
      '/tmp/c d',
      '/tmp/e f',
    ])
  })

  test('finds redirection targets', () => {
    assert.deepEqual(commandPaths('echo hi > /tmp/out'), ['/tmp/out'])
    assert.deepEqual(commandPaths('make >>/var/log/build.log 2>/tmp/err'), ['/var/log/build.log', '/tmp/err'])
    assert.deepEqual(commandPaths('sort < /etc/passwd'), ['/etc/passwd'])
    assert.deepEqual(commandPaths('run &> /tmp/all'), ['/tmp/all'])
  })

  test('skips fd duplications, here-documents and here-strings', () => {
    assert.deepEqual(commandPaths('make 2>&1 >&2'), [])
    assert.deepEqual(commandPaths('cat <<EOF'), [])
    assert.deepEqual(commandPaths('cat <<< /not/a/file'), [])
  })

  test('leaves out harmless device paths', () => {
    assert.deepEqual(commandPaths('make > /dev/null 2> /dev/stderr < /dev/stdin; cat /dev/fd/3 /dev/tty'), [])
  })

  test('a glob stands for its directory', () => {
    assert.deepEqual(commandPaths('rm /tmp/*.log'), ['/tmp'])
    assert.deepEqual(commandPaths('ls /var/log/app*'), ['/var/log'])
    assert.deepEqual(commandPaths('ls /data/[ab]/x'), ['/data'])
    assert.deepEqual(commandPaths('ls *.js ../*.js', 'a/b'), ['a'])
  })

  test('a quoted glob is a literal path', () => {
    assert.deepEqual(commandPaths('cat "/tmp/*.log"'), ['/tmp/*.log'])
  })

  test('finds paths in assignments and --option=value', () => {
    assert.deepEqual(commandPaths('OUT=/opt/out make'), ['/opt/out'])
    assert.deepEqual(commandPaths('gcc --output=/tmp/a.out -I=/usr/include x.c'), [
      '/tmp/a.out',
      '/usr/include',
    ])
  })

  test('leaves out words that expand at run time, except in single quotes', () => {
    assert.deepEqual(commandPaths('cat $HOME/x "$DIR/y" /tmp/`id -u` /a/$(date)'), [])
    assert.deepEqual(commandPaths(`cat '/tmp/$literal'`), ['/tmp/$literal'])
  })

  test('follows pipes, lists and subshells; ignores comments', () => {
    assert.deepEqual(commandPaths('cat /a | grep x > /b; (cd /c) || ls /d & ls /e # /f'), [
      '/a',
      '/b',
      '/c',
      '/d',
      '/e',
    ])
  })

  test('drops trailing slashes and repeats', () => {
    assert.deepEqual(commandPaths('ls /tmp/ /tmp /'), ['/tmp', '/'])
  })

  test('a root written with several slashes is the root, not the working directory', () => {
    assert.deepEqual(commandPaths('rm -rf //'), ['/'])
    assert.deepEqual(commandPaths('ls /// //etc'), ['/', '//etc'])
  })

  test('stops at 32 paths', () => {
    const many = Array.from({ length: 40 }, (_, i) => `/p${i}`).join(' ')
    assert.equal(commandPaths(`touch ${many}`).length, 32)
  })
})

describe('shellWords', () => {
  test('gives each word its role', () => {
    const words = shellWords('A=1 git log > out 2>&1 <<EOF')
    assert.deepEqual(
      words.map(({ text, role }) => [text, role]),
      [
        ['A=1', 'arg'],
        ['git', 'command'],
        ['log', 'arg'],
        ['out', 'redirect'],
        ['1', 'heredoc'],
        ['EOF', 'heredoc'],
      ],
    )
  })

  test('marks quoted words', () => {
    const [plain, single, double] = shellWords(`a 'b' "c"`)
    assert.deepEqual(
      [plain.quoted, single.quoted, double.quoted],
      [
        { any: false, single: false },
        { any: true, single: true },
        { any: true, single: false },
      ],
    )
  })
})
