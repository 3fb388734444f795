// What every remote tool shares: where it runs (the addon's RemotePlace), the addon, the prompt log and the
// workspace root on the host.
import { hostError, promptLog } from './permissions.mjs'

/**
 * Everything the tools share: where they run, the addon, the prompt log (one per plugin: the prompts of
 * every workspace a shared server holds go through the same event hook).
 * @returns {RemoteEnv}
 */
export function remoteEnv(input, options, api, prompts = promptLog()) {
  const { host, root = '~', workspace = 'default', shell } = options.remote
  const place = { host, workspace, root, projectDir: input.directory, options }
  let rootPath
  return {
    api,
    host,
    place,
    projectDir: input.directory,
    shell: { name: shell ?? 'bash', fixed: Boolean(shell) },
    prompts,
    /** The canonical workspace root on the host, asked once. */
    root() {
      rootPath ??= api.remoteCall(place, 'fs/stat', { path: '.' }).then(
        (outcome) => outcome.result?.path ?? root,
        (error) => {
          rootPath = undefined
          throw hostError(error)
        },
      )
      return rootPath
    },
  }
}

/**
 * @typedef {object} RemoteEnv
 * @property {object} api
 * @property {string} host
 * @property {object} place the addon's RemotePlace
 * @property {string} projectDir the local project directory
 * @property {{name: string, fixed: boolean}} shell
 * @property {ReturnType<typeof promptLog>} prompts
 * @property {() => Promise<string>} root
 */
