// The numbers the remote tools share: how much output OpenCode shows, how far a search goes, how long a
// command and a permission answer may take. Each is OpenCode 1.18.33's own value where one exists.

/** Lines and bytes OpenCode shows of a tool's output before it truncates it (Truncate MAX_LINES/MAX_BYTES). */
export const OUTPUT_MAX_LINES = 2000
export const OUTPUT_MAX_BYTES = 50 * 1024
/** Lines of a read's frame (<path>, <type>, <content>, blank, note, </content>). */
export const READ_FRAME_LINES = 6
/** Characters of a line a read shows; longer lines are cut with a note. */
export const READ_LINE_CHARS = 2000
export const LINE_CUT_NOTE = `... (line truncated to ${READ_LINE_CHARS} chars)`
/** Matches a grep and paths a glob or list show (the built-ins' limit). */
export const SEARCH_LIMIT = 100
/** Entries a directory read asks the stub for. */
export const DIR_ENTRIES_MAX = 100_000
/** Command timeout when the model gives none (OpenCode's default), in ms. */
export const BASH_TIMEOUT_MS = 120_000
/** Characters of command output kept in the tool part's metadata (the UI preview). */
export const BASH_PREVIEW_CHARS = 30_000
/** Room left for the truncation and <shell_metadata> notes, so OpenCode never truncates a second time. */
export const BASH_NOTE_LINES = 12
export const BASH_NOTE_BYTES = 2048
/** How long to wait for the `permission.replied` event after ctx.ask resolved, in ms. */
export const REPLY_EVENT_WAIT_MS = 2000
/** Unanswered external_directory prompts remembered at most. */
export const PROMPT_LOG_MAX = 200
/** Permission rounds one stub request may go through (each refused path is asked once). */
export const MAX_PERMISSION_ROUNDS = 8
