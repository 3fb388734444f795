import type {
  CreateWorkspaceOptions,
  LoginProgress,
  RemoteLoginOptions,
  RemoteLoginResult,
  RemotePlace,
  ReviveOptions,
  WorkspaceTarget,
} from './index'

export type {
  CreateWorkspaceOptions,
  LoginProgress,
  LoginTimings,
  RemoteLoginOptions,
  RemoteLoginResult,
  RemotePlace,
  ReviveOptions,
  WorkspaceTarget,
} from './index'

/** An error from the addon: `code` is stable (UNKNOWN_HOST, HOST_KEY_CHANGED, …), `message` is safe to show the model. */
export interface RemoteError extends Error {
  code: string
}

/** Dispatch a session to a configured host; rejects with a {@link RemoteError}. */
export declare function remoteLogin(options: RemoteLoginOptions): Promise<RemoteLoginResult>
/** The configured host names (never addresses), sorted; rejects with a {@link RemoteError}. */
export declare function listHosts(projectDir?: string | null, options?: any | null): Promise<Array<string>>
/** Start connecting to a host ahead of remoteLogin; resolves to whether the connection is up. */
export declare function warmHost(
  host: string,
  projectDir?: string | null,
  options?: any | null,
): Promise<boolean>
/** Cancel a running remoteLogin by its requestId. */
export declare function cancelRemoteLogin(requestId: string): boolean
/** Where the running remoteLogin with this requestId is (phase, elapsed time, the remote's latest step); null when none runs. */
export declare function loginProgress(requestId: string): LoginProgress | null
/** The JSON Schema of hosts.json or of the plugin options. */
export declare function configSchema(kind?: 'hosts' | 'plugin-options'): any
/** Run the opencode-remote command line (arguments without the program name); resolves to the exit code. */
export declare function runCli(args: Array<string>): Promise<number>
/** A stub answer, or the permission the stub needs first (see protocol/src/lib.rs for the shapes). */
export interface RemoteOutcome {
  result?: any
  permission?: { requestId: string; path: string; paths: string[]; patterns: string[]; operation: string }
}
/** A file or search operation on the host: fs/read, fs/write, fs/stat, fs/list, fs/remove, fs/rename, glob, grep. */
export declare function remoteCall(place: RemotePlace, operation: string, body: any): Promise<RemoteOutcome>
/**
 * Make sure the host's stub serves this workspace (bootstrapping it when needed); warm, one exec. Rejects
 * with FORWARDING_REFUSED when the host's sshd refuses stream-local forwarding (`AllowStreamLocalForwarding`).
 */
export declare function remoteAttach(place: RemotePlace): Promise<true>
/**
 * Run a command on the host; `result` is {stdout, stderr, exitCode, signal, timedOut, cancelled,
 * truncated, outputPath}. `requestId` lets `cancelRemoteExec` stop it (its whole process group). A long
 * output is cut to its head and tail; with `outputDir` its full text is saved there (file 0600, directory
 * 0700) and `outputPath` names the file.
 */
export declare function remoteExec(
  place: RemotePlace,
  request: any,
  requestId?: string,
  outputDir?: string,
): Promise<RemoteOutcome>
/** Stop a running `remoteExec`; returns whether one was running. */
export declare function cancelRemoteExec(requestId: string): boolean
/** Answer a permission request: {requestId, reply: 'once' | 'always' | 'reject'}; a once reply returns a grant. */
export declare function remoteReply(
  place: RemotePlace,
  reply: { requestId: string; reply: string },
): Promise<any>
/**
 * Create an SSH workspace (host selection, lease, stub bootstrap, the workspace's own opencode serve). Rejects
 * with FORWARDING_REFUSED when the host's sshd refuses stream-local forwarding (`AllowStreamLocalForwarding`).
 */
export declare function createWorkspace(options: CreateWorkspaceOptions): Promise<WorkspaceTarget>
/**
 * The workspace's running server. With `revive`, a workspace whose lease survived an OpenCode restart gets
 * its server started again; null when there is no such workspace.
 */
export declare function workspaceTarget(id: string, revive?: ReviveOptions): Promise<WorkspaceTarget | null>
/** Stop a workspace's server and release its host; resolves to whether it held a lease. */
export declare function removeWorkspace(id: string): Promise<boolean>
