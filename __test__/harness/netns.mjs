// Throw-away network namespaces for fault injection (tc netem does not exist here): a namespace `ocr<hex>`
// joined to this host by a veth pair on a random /30 of the benchmark range 198.18.0.0/15 (RFC 2544, never
// routed), so a real sshd can run behind a link the tests cut, and whose packets iptables drops at random.
import { randomBytes, randomInt } from 'node:crypto'
import { exec, onExit, removeNetns, track } from './proc.mjs'

/** 198.18.0.0/15 holds 2^17 addresses: 32768 subnets of 4. */
const SUBNETS = 1 << 15
const BASE = (198 << 24) | (18 << 16)
/** Subnets handed out by this process (others are seen in `ip addr`). */
const taken = new Set()

const ipv4 = (n) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.')

/** Every IPv4 address configured on this host (outside our namespaces). */
async function hostAddresses() {
  const { stdout } = await exec('ip', ['-o', '-4', 'addr', 'show'])
  return new Set([...stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1]))
}

/** A /30 of 198.18.0.0/15 that no interface of this host uses yet. */
async function pickSubnet() {
  const used = await hostAddresses()
  for (let i = 0; i < 100; i++) {
    const index = randomInt(SUBNETS)
    const base = (BASE + index * 4) >>> 0
    if (taken.has(index) || used.has(ipv4(base + 1)) || used.has(ipv4(base + 2))) continue
    taken.add(index)
    return { index, hostAddress: ipv4(base + 1), address: ipv4(base + 2) }
  }
  throw new Error('no free /30 left in 198.18.0.0/15')
}

/**
 * Create a namespace with `lo` up and a veth pair to this host: `hostAddress` (.1) here, `address` (.2)
 * inside. Removed by `remove()`, at process exit, and by the reaper if this process is SIGKILLed. Throws
 * (with the command's output) when namespaces cannot be made, e.g. without CAP_NET_ADMIN: callers must
 * fail, not skip.
 * @returns {Promise<Netns>}
 */
export async function createNetns() {
  const hex = randomBytes(3).toString('hex')
  const name = `ocr${hex}`
  // Interface names are limited to 15 characters.
  const hostLink = `${name}h`
  const nsLink = `${name}n`
  const { index, hostAddress, address } = await pickSubnet()
  const handle = { name, link: hostLink }
  const untrack = track({ netns: handle })
  let removed = false
  const removeSync = () => {
    if (removed) return
    removed = true
    removeNetns(handle)
    taken.delete(index)
    untrack()
  }
  const unregister = onExit(removeSync)
  const ip = (...args) => exec('ip', args)
  const inside = (file, ...args) => exec('ip', ['netns', 'exec', name, file, ...args])

  try {
    await ip('netns', 'add', name)
    await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nsLink)
    await ip('link', 'set', nsLink, 'netns', name)
    await ip('addr', 'add', `${hostAddress}/30`, 'dev', hostLink)
    await ip('link', 'set', hostLink, 'up')
    await inside('ip', 'addr', 'add', `${address}/30`, 'dev', nsLink)
    await inside('ip', 'link', 'set', nsLink, 'up')
    await inside('ip', 'link', 'set', 'lo', 'up')
  } catch (error) {
    removeSync()
    unregister()
    throw new Error(`cannot create network namespace ${name} (needs root / CAP_NET_ADMIN): ${error.message}`)
  }

  let lossRules = []
  const netns = {
    name,
    hostLink,
    nsLink,
    hostAddress,
    address,
    exec: (file, args, opts) => exec('ip', ['netns', 'exec', name, file, ...args], opts),
    async linkDown() {
      await inside('ip', 'link', 'set', nsLink, 'down')
    },
    async linkUp() {
      await inside('ip', 'link', 'set', nsLink, 'up')
    },
    async cutLink(ms) {
      await netns.linkDown()
      try {
        await new Promise((r) => setTimeout(r, ms))
      } finally {
        await netns.linkUp()
      }
    },
    async setLoss(probability) {
      if (!(probability >= 0 && probability < 1))
        throw new Error(`loss must be in [0, 1), got ${probability}`)
      for (const rule of lossRules) await inside('iptables', '-D', ...rule)
      lossRules = []
      if (probability === 0) return
      const drop = ['-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP']
      for (const rule of [
        ['INPUT', '-i', nsLink, ...drop],
        ['OUTPUT', '-o', nsLink, ...drop],
      ]) {
        await inside('iptables', '-A', ...rule)
        lossRules.push(rule)
      }
    },
    async droppedPackets() {
      let dropped = 0
      for (const chain of ['INPUT', 'OUTPUT']) {
        const { stdout } = await inside('iptables', '-L', chain, '-v', '-n', '-x')
        for (const line of stdout.split('\n'))
          if (/\bDROP\b.*statistic/.test(line)) dropped += Number(line.trim().split(/\s+/)[0])
      }
      return dropped
    },
    async remove() {
      removeSync()
      unregister()
    },
  }
  return netns
}

/**
 * @typedef {object} Netns
 * @property {string} name `ocr<6 hex>`
 * @property {string} hostLink veth end on this host (`<name>h`)
 * @property {string} nsLink veth end inside the namespace (`<name>n`)
 * @property {string} hostAddress this host's address on the link (198.18.x.y+1)
 * @property {string} address the namespace's address (198.18.x.y+2)
 * @property {(file: string, args: string[], opts?: object) => ReturnType<typeof exec>} exec run a program
 *   inside the namespace
 * @property {() => Promise<void>} linkDown take the namespace's end down: packets from this host are
 *   blackholed (no RST, no ICMP), like a cable pulled out
 * @property {() => Promise<void>} linkUp
 * @property {(ms: number) => Promise<void>} cutLink down, wait `ms`, up again
 * @property {(probability: number) => Promise<void>} setLoss drop this share of packets at random in each
 *   direction on the link (iptables statistic); 0 removes the rules
 * @property {() => Promise<number>} droppedPackets how many packets the loss rules dropped so far
 * @property {() => Promise<void>} remove delete the namespace and both veth ends
 */
