// A whole file on the host as text, for the tools that rewrite it (edit, apply_patch).

/**
 * A whole file as text, or undefined when `mayBeMissing` and it does not exist (an edit with an empty
 * oldString creates the file; on an existing file that is an error, as in the built-in).
 */
export async function readText(host, target, mayBeMissing) {
  const stat = await host.call('fs/stat', { path: target })
  if (!stat.exists) {
    if (mayBeMissing) return undefined
    throw new Error(`File ${stat.path} not found`)
  }
  if (stat.kind === 'dir') throw new Error(`Path is a directory, not a file: ${stat.path}`)
  if (mayBeMissing) {
    throw new Error(
      'oldString cannot be empty when editing an existing file. Provide the exact text to replace, or use write for an intentional full-file replacement.',
    )
  }
  const result = await host.call('fs/read', { path: target, mode: 'bytes' })
  return { path: result.path, text: Buffer.from(result.base64 ?? '', 'base64').toString('utf8') }
}
