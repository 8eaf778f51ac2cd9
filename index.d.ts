// leakguard — public API. Keep in step with index.js and the README.

import type { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Stable error codes: `codes.CAPTURE_IN_PROGRESS === 'ERR_LEAKGUARD_CAPTURE_IN_PROGRESS'`. */
export declare const codes: Readonly<Record<string, string>>

export type CaptureMode = 'auto' | 'fork' | 'inline'

export interface CaptureOptions {
  /** Directory for snapshots; created 0700 if missing. Default `./heapsnapshots` (from cwd). */
  dir?: string
  /** `'auto'` (default): fork on Linux/glibc main thread when memory allows, else inline. */
  mode?: CaptureMode
  /** gzip level 0–9. Default 1 (keeps pace with V8's serializer; see docs/how-it-works.md). */
  level?: number
  /** Free text stored in the manifest. */
  reason?: string
  /** Keep at most this many leakguard snapshots in `dir` (oldest removed). Default 5. */
  maxSnapshots?: number
  /** Keep at most this many bytes of leakguard snapshots in `dir`. Default: no limit. */
  maxBytes?: number
  /** Skip the memory and disk headroom check (a fork child still runs under its memory
   *  budget, at least 16 MiB, and fails alone if it does not fit). Default false. */
  force?: boolean
  /** Lower the fork child's memory budget to this many bytes (a positive integer); it
   *  never raises what the container can give. An inline capture's estimate must fit
   *  under it too. Default: the budget from the cgroup and MemAvailable (docs/budget.md). */
  memoryBudget?: number
  /** When a fork capture fails: `'inline'` (default) retries inline; `'none'` rejects. */
  fallback?: 'inline' | 'none'
  /** Kill a fork child that sends no byte for this long (ms). Default 120000. */
  forkTimeoutMs?: number
  /** Aborts the capture (compression/write phase; kills a fork child). */
  signal?: AbortSignal
}

export interface CapturePhases {
  /** JS-thread preparation: heap figures, headroom check, job start. */
  prepareMs: number
  /** V8's take and serialize (inline: on the JS thread; fork: the child's lifetime). */
  takeMs?: number
  /** Inline: how long gzip ran on after V8 finished. */
  compressLagMs?: number
  fsyncMs: number
  commitMs: number
}

export interface ForkInfo {
  pid: number
  outcome: string
  /** The child's peak RSS (VmHWM as sampled, or wait4's ru_maxrss), bytes. */
  childPeakRss: number
  /** The child's peak address space (VmPeak as sampled), bytes. */
  childPeakVm: number
  /** The memory budget it ran under; `addressSpaceLimit` (RLIMIT_AS) =
   *  `addressSpaceAtFork` (VmSize at the fork) + `budgetBytes`. null without a budget. */
  budgetBytes: number | null
  addressSpaceAtFork: number | null
  addressSpaceLimit: number | null
  /** What the child printed (stdout/stderr through a pipe, first lines), else null. */
  output: string | null
  childMs: number
  attempts: number
  /** Time of the MADV_DOFORK pass on the JS thread, over all attempts. */
  madviseMs: number
  quietWaitMs: number
  /** Time of `fork()` itself in the parent (page tables of the whole process). */
  forkMs: number
  /** `madvise` calls of the last attempt's opening pass. */
  rangesOpened: number
  /** `'spans'`: one call per gap between file-backed/special mappings (the fast pass);
   *  `'exact'`: `/proc/self/maps` read on the JS thread and one call per anonymous mapping. */
  openPass: 'spans' | 'exact'
  /** Why the exact pass ran (a span's madvise failed), else null. */
  exactPassReason: string | null
  condvarsReset: number
  smapsMs: number | null
}

export interface CaptureClass {
  name: string
  /** V8's node type: `'object'`, `'native'`, `'string'`, `'closure'`, … */
  type: string
  count: number
  selfSize: number
}

export interface ClassGrowthEntry extends CaptureClass {
  countGrowth: number
  bytesGrowth: number
  /** null when both captures have the same time. */
  countPerHour: number | null
  bytesPerHour: number | null
  /** The class was not listed in the older capture: its baseline is that list's cut-off,
   *  so the growth is a lower bound. */
  approximate: boolean
}

export interface ClassGrowth {
  from: string
  to: string
  hours: number
  /** Classes whose count or self size grew, largest byte growth first. */
  classes: ClassGrowthEntry[]
}

/**
 * Compare two captures' class histograms (CaptureResults, manifests, or `status().captures`
 * entries; either order, the older is the baseline). Microseconds.
 */
export declare function classGrowth(
  a: Pick<CaptureResult, 'classes' | 'createdAt'> & Partial<Pick<CaptureResult, 'classTotals'>>,
  b: Pick<CaptureResult, 'classes' | 'createdAt'> & Partial<Pick<CaptureResult, 'classTotals'>>,
  options?: { limit?: number }
): ClassGrowth

export interface CaptureResult {
  /** `<dir>/heap-<UTC>-<pid>-<seq>.heapsnapshot.gz` */
  path: string
  /** `<dir>/heap-<UTC>-<pid>-<seq>.json`: this same object. */
  manifestPath: string
  name: string
  mode: 'fork' | 'inline'
  /** Why this mode: `'requested'`, `'auto: …'`, `'fallback: …'`. */
  modeReason: string
  /** Compressed bytes on disk. */
  bytes: number
  /** Bytes of snapshot JSON. */
  rawBytes: number
  level: number
  /** Longest time the event loop could not turn because of this capture (measured), ms. */
  stallMs: number
  durationMs: number
  heapUsed: number
  heapTotal: number
  rss: number
  rssAfter: number
  external: number
  arrayBuffers: number
  heapSizeLimit: number
  reason: string | null
  pid: number
  hostname: string
  thread: 'main' | 'worker'
  nodeVersion: string
  leakguardVersion: string
  createdAt: string
  headroom: {
    /** Inline: the conservative estimate. Fork: what an ordinary heap of this size needs
     *  (8× heapUsed outside the large-object spaces, 2× inside, + 32 MiB). */
    neededBytes: number; availableBytes: number | null; source: string; diskNeededBytes: number; diskFreeBytes: number | null; forced: boolean
    /** Fork: the child's memory budget, bytes, and what was held back to reach it. */
    budgetBytes?: number
    budget?: { cowReserveBytes: number; parentReserveBytes: number; marginBytes: number; requestedBytes: number | null }
    /** Fork: bytes of heapUsed in V8's large-object spaces. */
    largeObjectUsed?: number
    /** Fork: the child's peak RSS and peak address space beyond its size at the fork. */
    childPeakRss?: number
    childPeakBudgetUsed?: number | null
    /** cgroup v2 `memory.oom.group` is 1 (Kubernetes containers): an OOM kill of a fork child
     *  kills the whole group, the server included. null when not known (cgroup v1, none). */
    oomGroup: boolean | null
  }
  phases: CapturePhases
  /** The class histogram, counted by the capture thread as the snapshot streamed to gzip:
   *  the 50 largest classes by self size and the 50 most numerous, deduplicated, largest
   *  self size first. `name` by DevTools' rule (`object`/`native` nodes by their name,
   *  others `(string)`, `(closure)`, `(system)`, …). null if the stream did not parse. */
  classes: CaptureClass[] | null
  /** All nodes, their self size, and the number of distinct classes. */
  classTotals: { count: number; selfSize: number; classes: number } | null
  /** Why there is no histogram although the file was kept. */
  classesError?: string
  fork?: ForkInfo
  /** Base names that retention removed. */
  pruned?: string[]
  /** Set when V8 reported an error although the stream was complete. */
  writeWarning?: string
}

/**
 * Take a gzip-compressed heap snapshot now. Bad options throw synchronously (coded
 * TypeError/RangeError); the capture resolves to a CaptureResult or rejects with a coded
 * Error (CAPTURE_IN_PROGRESS, CAPTURE_NO_HEADROOM, CAPTURE_FORK_FAILED, …), leaving no
 * partial file.
 */
export declare function capture(options?: CaptureOptions): Promise<CaptureResult>

export type LeakState = 'warming-up' | 'healthy' | 'growing' | 'leak'

export interface LeakReport {
  state: LeakState
  slopeBytesPerHour: number
  /** 0..1 */
  confidence: number
  floorBytes: number
  /** Epoch ms when the floor is projected to reach 80 % of the old-generation limit, or null. */
  projectedLimitAt: number | null
  slopeLowerBytesPerHour: number
  targetBytes: number | null
  tier: 'urgent' | 'suspected' | 'geometric' | 'confirmed' | null
  points: number
  since: number
  evaluatedAt: number
  detail: string
  /** Native report only. */
  source?: 'rss-heapTotal' | 'external'
}

export interface LeakEvent extends LeakReport { series: 'heap' | 'native'; previousState: LeakState }

export interface PressureReport {
  level: 'warn' | 'critical'
  reasons: Array<'heap' | 'headroom' | 'projection' | 'gc'>
  since: number
  at: number
  oldGenerationUsedBytes: number
  oldGenerationLimitBytes: number
  youngGenerationReserveBytes: number
  heapFraction: number
  markingDuty: number
  majorGcPerSecond: number
  gcPauseFraction: number
  elu: number
  projectedLimitAt: number | null
  etaMs: number | null
}

export interface StallEvent { startedAt: number; durationMs: number; thresholdMs: number; observed: boolean; rss: number | null; cpuMs: number | null }

export interface GcKindTotals { count: number; pauseMs: number }

export interface MemorySample {
  /** Epoch ms. */
  time: number
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
  heapSizeLimit: number
  totalAvailableSize: number
  mallocedMemory: number
  numberOfNativeContexts: number
  numberOfDetachedContexts: number
  /** heapSizeLimit − youngGenerationReserve */
  oldGenerationLimit: number
  youngGenerationReserve: number
  /** The cgroup limit, else total RAM. */
  memoryLimit: number
  /** Cumulative GC totals. */
  gc: { minor: GcKindTotals; major: GcKindTotals; incremental: GcKindTotals; weakCallbacks: GcKindTotals; markingMs: number; majorFloorBytes: number | null }
  /** This window's event-loop delay. */
  loopDelay: { p50Ms: number | null; p99Ms: number | null; maxMs: number | null }
  elu: number | null
  windowMs: number | null
}

/** One memory reading, now. */
export declare function sample(): MemorySample

export interface ListenerCallSite { location: string /* file:line:column */; count: number }

export interface ListenerLeak {
  emitter: string
  event: string
  count: number
  ratePerMinute: number
  callSites: ListenerCallSite[]
  state: 'leak' | 'suspect'
  growing: boolean
  floor: number
  warned: boolean
  samples: number
  since: number | null
}

export interface ListenerWarning { emitter: string; event: string; count: number; location: string | null; at: number }

export interface ListenerReport {
  mode: 'tracked' | 'all'
  running: boolean
  intervalMs: number
  ticks: number
  stacksCaptured: number
  emitters: number
  pairs: number
  leaks: ListenerLeak[]
  suspects: ListenerLeak[]
  warnings: ListenerWarning[]
  patchesLeftInPlace: string[]
  lastError: string | null
}

/** An EventEmitter, an EventTarget, or a duck-typed emitter (eventemitter3 and the like). */
export type AuditableEmitter =
  | EventEmitter
  | EventTarget
  | { on(event: string | symbol, fn: (...a: any[]) => void, ...rest: any[]): unknown
      removeListener(event: string | symbol, fn?: (...a: any[]) => void, ...rest: any[]): unknown
      listenerCount?(event: string | symbol): number
      listeners?(event: string | symbol): unknown[]
      eventNames?(): Array<string | symbol> }

export interface ListenerAuditOptions {
  windowSamples?: number
  minGrowth?: number
  suspectGrowth?: number
  confirmSamples?: number
  stacksPerTick?: number
  stackFrames?: number
  maxCallSites?: number
  registerAt?: number
}

export interface Status {
  heap: LeakReport
  native: LeakReport
  pressure: PressureReport | null
  latest: MemorySample | null
  intervalMs: number
  ringBytes: number
  listeners: ListenerReport
  captures: CaptureResult[]
  captureCounts?: { done: number; failed: Record<string, number>; last: CaptureResult | null; lastAt: number }
}

export interface WatchOptions {
  /** Sampling interval, ms (default 10000, min 100). The verdict's time constants scale with it. */
  intervalMs?: number
  /** Defaults for every capture this guard takes. */
  capture?: CaptureOptions
  /** Default { onLeak: true, onPressure: false, cooldownMs: 600000, maxPerHour: 2 }; false turns it off. */
  autoCapture?: false | { onLeak?: boolean; onPressure?: boolean; cooldownMs?: number; maxPerHour?: number }
  /** heapFraction of the old-generation limit (0.7), gcFraction = marking duty (0.5), majorGcPerSecond (3). */
  pressure?: { heapFraction?: number; gcFraction?: number; majorGcPerSecond?: number }
  /** Verdict time constants; defaults 90 / 720 / 180 × intervalMs. */
  verdict?: { warmUpMs?: number; windowMs?: number; holdMs?: number }
  emitters?: Record<string, AuditableEmitter>
  /** Default 'tracked'. */
  auditListeners?: 'tracked' | 'all'
  listenerAudit?: ListenerAuditOptions
  /** Default 1000, min 50. */
  stallThresholdMs?: number
  /** A signal that triggers a capture, e.g. 'SIGUSR2'. Off by default. */
  signal?: string | false
  /** NDJSON log file (rotated by size), written off the JS thread. */
  logFile?: string | { path: string; maxBytes?: number; files?: number }
}

export interface Guard extends EventEmitter {
  status(): Status
  samples(): MemorySample[]
  listenerReport(): ListenerReport
  track(emitter: AuditableEmitter, name: string): void
  capture(options?: CaptureOptions): Promise<CaptureResult>
  metrics(): string
  stop(): void
}

/** Start watching this process; a second call returns the same Guard. */
export declare function watch(options?: WatchOptions): Guard

export interface AdminOptions {
  /** The bearer secret, 16–4096 printable ASCII; required unless allowUnauthenticated. */
  token?: string
  /** No token: answer loopback peers without proxy headers only. Default false. */
  allowUnauthenticated?: boolean
  /** Where the routes live, e.g. '/debug/leakguard' (node:http, Koa). Default ''. */
  prefix?: string
  /** 429 after a successful capture for this long. Default 30000. */
  cooldownMs?: number
  /** Serve GET …/snapshots/<name>. Default false. */
  allowDownload?: boolean
  /** Default: the guard's capture.dir, else 'heapsnapshots' from cwd. */
  dir?: string
  capture?: CaptureOptions
}
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void
export interface AdminHandlerFactory {
  (options: AdminOptions): AdminHandler
  koa(options: AdminOptions): (ctx: { req: IncomingMessage; res: ServerResponse; respond?: boolean }, next: () => Promise<unknown>) => Promise<unknown>
  fastify(instance: any, options: AdminOptions & { prefix?: string; logLevel?: string; logSerializers?: unknown }, done: (err?: Error) => void): void
}
/** The admin route: POST …/capture, GET …/status, …/metrics, …/snapshots[/<name>]. */
export declare const adminHandler: AdminHandlerFactory
export interface AdminErrorBody { error: { code: string; message: string } }

export interface PromRegistryLike { registerMetric(metric: unknown): void; getSingleMetric(name: string): unknown; removeSingleMetric(name: string): void }
export interface PromCollectorOptions { client?: unknown }
export interface PromCollection { names: string[]; unregister(): void }
/** Register leakguard's metrics with an existing prom-client registry (optional peer). */
export declare function promCollector(register: PromRegistryLike, options?: PromCollectorOptions): PromCollection
