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
  /** Ship the capture to object storage once it is on disk (docs/uploads.md); `false`
   *  turns off an upload the guard's options would make. */
  upload?: UploadDestination | false
}

/** A pre-sign function: one pre-signed PUT URL per object (the app holds no credentials). */
export type PresignFunction = (key: string, file: { role: UploadFileRole; path: string; bytes: number; contentType: string }) => string | Promise<string>

/** `'s3://bucket/prefix'`, UploadOptions, or a pre-sign function. */
export type UploadDestination = string | UploadOptions | PresignFunction

export type UploadFileRole = 'snapshot' | 'profile' | 'manifest' | 'file'

export interface UploadOptions {
  /** `s3://bucket/prefix` (AWS or any S3-compatible store with `endpoint`). Or give `bucket` (+ `prefix`). */
  url?: string
  bucket?: string
  /** Key prefix (added after the URL's own). */
  prefix?: string
  /** Instead of url/bucket: a function returning a pre-signed PUT URL per object. */
  presign?: PresignFunction
  /** An S3-compatible endpoint (MinIO, Ceph, R2): `https://host:port`. Default: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS. */
  endpoint?: string
  /** Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1. */
  region?: string
  /** Static credentials (both or neither). Default: the standard chain — environment, web
   *  identity (IRSA), ECS task role, EC2 instance metadata. */
  accessKeyId?: string
  secretAccessKey?: string
  sessionToken?: string
  /** Remove the local files once the store confirmed every object. Default true. */
  deleteLocal?: boolean
  /** capture()/watch(): resolve the capture only after its upload (`result.upload`); an
   *  upload failure then rejects the capture's promise (`err.capture`). Default false. */
  wait?: boolean
  /** Attempts after the first, for transient failures. Default 3. */
  retries?: number
  /** First pause between attempts, doubled each time up to maxBackoffMs. Defaults 1000 / 30000. */
  backoffMs?: number
  maxBackoffMs?: number
  /** Deadline for the whole upload, attempts and pauses included, ms. Default 1800000 (30 min). */
  timeoutMs?: number
  /** Multipart part size, bytes (min 5 MiB). Default 8 MiB; files up to one part go in one PUT. */
  partSize?: number
  /** Key segment for the service. Default: LEAKGUARD_SERVICE, OTEL_SERVICE_NAME, npm_package_name, the script name. */
  service?: string
  /** Key segment for the instance. Default: POD_NAME, K8S_POD_NAME, HOSTNAME, os.hostname(). */
  instance?: string
  /** Cancels the upload; the local files are kept. */
  signal?: AbortSignal
}

export interface UploadedFile {
  role: UploadFileRole
  /** The local path (removed when `deletedLocal`). */
  path: string
  /** `<prefix>/<service>/<instance>/<file name>` */
  key: string
  /** `s3://bucket/key`, or the pre-signed URL without its query string. */
  url: string
  bytes: number
  etag: string | null
  /** 1 for a single PUT. */
  parts: number
}

export interface UploadResult {
  /** `s3://bucket/prefix`, or `'presigned'`. */
  destination: string
  endpoint: string | null
  service: string
  instance: string
  namespace: string | null
  node: string | null
  pid: number
  /** Snapshot, profile, manifest (last: the manifest's `upload` field records all of this). */
  files: UploadedFile[]
  bytes: number
  attempts: number
  durationMs: number
  uploadedAt: string
  deletedLocal: boolean
  deleted: string[]
  /** Local clean-up that failed after a successful upload. */
  warnings?: string[]
}

/** What status().uploads shows: process-wide. */
export interface UploadStatus {
  /** Uploads started and not yet ended. */
  pending: number
  /** Whether the `leakguard-upload` thread is alive (it exits when the queue is empty). */
  thread: boolean
  recent: ({ ok: true; path: string; destination: string; keys: string[]; bytes: number; attempts: number; at: number }
    | { ok: false; path: string; code: string; reason: string; message: string; attempts: number; at: number })[]
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
  /** The capture thread's time counting the class histogram (absent when it is off: `LEAKGUARD_NO_HISTOGRAM=1`). */
  histogramMs?: number
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
  /** With an `upload` destination: the upload's result, once it ended (at once with `wait: true`). */
  upload?: UploadResult
}

/**
 * Take a gzip-compressed heap snapshot now. Bad options throw synchronously (coded
 * TypeError/RangeError); the capture resolves to a CaptureResult or rejects with a coded
 * Error (CAPTURE_IN_PROGRESS, CAPTURE_NO_HEADROOM, CAPTURE_FORK_FAILED, …), leaving no
 * partial file.
 */
export declare function capture(options?: CaptureOptions): Promise<CaptureResult>

/**
 * Upload a leakguard capture — the snapshot, its manifest `<base>.json` and any allocation
 * profile beside it — given any one of its files. Bad destinations throw synchronously
 * (OPTIONS_INVALID); the upload rejects with UPLOAD_FAILED / UPLOAD_ABORTED /
 * UPLOAD_NOT_FOUND / UPLOAD_PRESIGN_FAILED and then keeps every local file.
 */
export declare function upload(path: string, destination: UploadDestination): Promise<UploadResult>

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
  captureCounts?: { done: number; failed: Record<string, number>; last: CaptureResult | null; lastAt: number
    uploads: { ok: number; failed: number; aborted: number; bytes: number; lastAt: number } }
  uploads: UploadStatus
  allocations: AllocationsStatus
}

/** Allocation sampling (docs/allocations.md). */
export interface AllocationsOptions {
  /** 'native' (V8's sampler through its C++ API, no GC per read), 'inspector' (inspector.Session; each read forces a full GC), 'auto' (native when built for this Node, else inspector). Default 'auto'. */
  source?: 'auto' | 'native' | 'inspector'
  /** Average bytes between samples (V8's Poisson sampling). Default 524288 (512 KiB), min 1024. */
  samplingInterval?: number
  /** Frames per site, leaf first; a site also ends at the first frame of the app's own code. Default 16. */
  stackDepth?: number
  /** Automatic reads every this many verdict intervals. Default 1 with the native source, 6 with the inspector. */
  readIntervals?: number
  /** No automatic read predicted to take longer than this, ms (each read forces a full GC). Default 250. */
  maxReadMs?: number
  /** Automatic reads take at most this fraction of wall time. Default 0.005. */
  maxDuty?: number
}

export interface AllocationsStatus {
  state: 'off' | 'sampling' | 'unavailable' | 'stopped'
  /** Why 'unavailable': another owner of the sampling profiler, or it was stopped under us. */
  reason?: string
  /** Which sampler runs: 'native' or 'inspector' (null while off or unavailable). */
  source?: 'native' | 'inspector' | null
  /** Why the native sampler is not used here (not built, built for another Node, …). */
  sourceReason?: string
  samplingInterval?: number
  stackDepth?: number
  readEveryMs?: number
  maxReadMs?: number
  maxDuty?: number
  reads?: number
  lastReadAt?: number | null
  /** The last read's time on the JS thread, ms (with the inspector, its forced GC included). */
  lastReadMs?: number | null
  /** Why automatic reads wait now (budget or duty cap), else null. */
  paused?: string | null
  /** The last read that failed without the profiler having stopped (the read was skipped). */
  readError?: string
  /** Live bytes in the last read (sum over sites). */
  liveBytes?: number | null
  samples?: number | null
  sites?: number
  frames?: number
  /** Bytes the site history, frame table and last read hold (Rust). */
  historyBytes?: number
}

export interface AllocationFrame {
  functionName: string
  /** Relative to the cwd when under it; `node:…` for Node's own. */
  file: string
  /** 1-based (the function's start, as V8's sampling profiler records it); 0 when unknown. */
  line: number
  column: number
}

export interface AllocationSite {
  /** `function file:line:column` of the frame that names the site (the app's own code first). */
  name: string
  /** Leaf first. */
  frames: AllocationFrame[]
  liveBytes: number
  /** Theil–Sen slope of the site's live bytes over the verdict's window, bytes/h. */
  growthBytesPerHour: number
  growthLowerBytesPerHour: number
  /** growthBytesPerHour / the heap floor's slope, in [0, 1]; 0 unless growing. */
  share: number
  growing: boolean
  /** 1 − p of the Mann–Kendall test over the site's points. */
  confidence: number
  points: number
}

export interface Report {
  createdAt: number
  heap: LeakReport
  native: LeakReport
  /** Growing sites first (by growth), then by live bytes. */
  sites: AllocationSite[]
  /** When two captures exist: the classes that grew between the two newest, from their
   *  class histograms (count and byte growth per hour); from their diff when the captures
   *  carry no histogram. */
  classes?: ClassGrowthEntry[] | ClassDelta[]
  /** When two captures exist: retainer paths of the classes that grew (their diff, run in a
   *  child process under the capture budget). */
  retainers?: RetainerPath[]
  /** Sections that failed, instead of failing the report. */
  errors?: { section: string; code: string | null; message: string }[]
  [section: string]: unknown
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
  /** Upload every capture this guard takes ('upload' / 'error' events; status().uploads). */
  upload?: UploadDestination
  /** Allocation sites from V8's sampling heap profiler. Default false; true takes the defaults of AllocationsOptions. */
  allocations?: boolean | AllocationsOptions
}

export interface Guard extends EventEmitter {
  status(): Status
  samples(): MemorySample[]
  listenerReport(): ListenerReport
  track(emitter: AuditableEmitter, name: string): void
  capture(options?: CaptureOptions): Promise<CaptureResult>
  metrics(): string
  /** What grows and where it was allocated; reads the allocation profile now. */
  report(): Promise<Report>
  /** The sampled profile: a Buffer, or with `path` the file written (0600) and its path. */
  allocationProfile(options?: { format?: 'heapprofile' | 'pprof'; path?: string }): Promise<Buffer | string>
  stop(): void
  on(event: 'leak-report', listener: (report: Report) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
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
/** The admin route: POST …/capture, GET …/status, …/metrics, …/snapshots[/<name>], …/report, …/allocations[?format=pprof]. */
export declare const adminHandler: AdminHandlerFactory
export interface AdminErrorBody { error: { code: string; message: string } }

export interface PromRegistryLike { registerMetric(metric: unknown): void; getSingleMetric(name: string): unknown; removeSingleMetric(name: string): void }
export interface PromCollectorOptions { client?: unknown }
export interface PromCollection { names: string[]; unregister(): void }
/** Register leakguard's metrics with an existing prom-client registry (optional peer). */
export declare function promCollector(register: PromRegistryLike, options?: PromCollectorOptions): PromCollection

// ── Snapshot analysis (docs/analysis.md) ─────────────────────────────────────────────

/** `{ phase, done, total }`: phases `read` (bytes of the file), `dominators`, `distances`
 *  (not in `summarize`, which reports no distances), `classes` (nodes), `paths`
 *  (instances; in a diff, of every class that gets paths); `snapshot` says which file in
 *  a diff. Within a phase `done` never falls; its last call has `done === total`. */
export interface AnalysisProgress {
  phase: 'read' | 'dominators' | 'distances' | 'classes' | 'paths' | string
  done: number
  total: number
  snapshot?: 'before' | 'after'
}

export interface AnalysisOptions {
  /** Aborts the analysis: the promise rejects with `ERR_LEAKGUARD_ANALYSIS_ABORTED`. */
  signal?: AbortSignal
  /** Called on the JS thread, at most ~10 times a second per phase. */
  onProgress?: (progress: AnalysisProgress) => void
}

export interface SummarizeOptions extends AnalysisOptions {
  /** Keep only the first `limit` classes (largest retained first). Default: all. */
  limit?: number
}

export interface ClassSummary {
  /** DevTools' class name: an object's constructor name, `(string)`, `(closure)`, `(array)`, `(system)`, … */
  name: string
  /** V8's node type: `object`, `string`, `closure`, `array`, `hidden`, `native`, … */
  type: string
  /** Instances with a non-zero self size (DevTools counts the same way). */
  count: number
  /** Sum of the instances' V8 self sizes, bytes. */
  shallowBytes: number
  /** Retained size of the instances that no other instance of the class dominates, bytes. */
  retainedBytes: number
}

export interface SnapshotSummary {
  nodes: number
  edges: number
  /** Sum of every node's V8 self size, bytes. */
  totalBytes: number
  /** Largest retained first. */
  classes: ClassSummary[]
}

export interface RetainerStep {
  /** The node's class name. */
  node: string
  /** The node's V8 type. */
  type: string
  /** The node's own name when it says more than its class (a function name, `system / Context`, `(GC roots)`). */
  name?: string
  /** Name of the edge into this node (`[]` for element indices when paths are merged); null on the first step. */
  edge: string | null
  edgeType: string | null
  /** `file:line:column` (1-based) of a closure's source. */
  location?: string
}

/** Shortest paths from a GC root to instances of one class, merged by the classes and edges they pass through (Eclipse MAT's "merge shortest paths"). */
export interface RetainerPath {
  className: string
  /** Instances this path holds. */
  count: number
  /** Their retained size (instances dominated by another instance of the class add 0), bytes. */
  retainedBytes: number
  steps: RetainerStep[]
  /** e.g. `global → store (property) → Object → sessions (property) → Map → table (internal) → (array) → [] (internal) → UserRecord` */
  text: string
}

export interface RetainersOptions extends AnalysisOptions {
  className: string
  /** Paths to return, most instances first. Default 10. */
  limit?: number
}

export interface DiffOptions extends AnalysisOptions {
  /** `'auto'` (default): by id when the capture manifests (or, without them, the data) show both files come from one process's inline captures; else by aggregate. */
  method?: 'auto' | 'id' | 'aggregate'
  /** Growing classes that get retainer paths. Default 5. */
  top?: number
  /** Paths per class. Default 3. */
  pathLimit?: number
  /** Least growth in entries or listeners a detector reports. Default 10. */
  minGrowth?: number
}

export interface ClassDelta {
  name: string
  type: string
  countDelta: number
  shallowDelta: number
  retainedDelta: number
  beforeCount: number
  afterCount: number
  /** By id only: instances only in `after`, only in `before`, and their self sizes. */
  newCount?: number
  deletedCount?: number
  allocatedBytes?: number
  freedBytes?: number
  /** For the classes that grew most: paths to their instances in `after` (by id: the new ones). */
  retainers?: RetainerPath[]
}

export interface GrowthDetector {
  /** `map`, `set`, `array`, `object` (used as a map: 8+ keys, properties or integer keys, in both files): entries grew; `listeners`: an emitter's `_events[event]` grew. */
  kind: 'map' | 'set' | 'array' | 'object' | 'listeners'
  /** The collection's class, or the emitter's. */
  className: string
  /** The event, for `listeners`. */
  event?: string
  /** Where it lives in `after` (count 1). */
  path: RetainerPath | null
  before: number
  after: number
  advice: string
}

export interface DiffReport {
  method: 'id' | 'aggregate'
  methodReason: string
  before: { nodes: number; totalBytes: number }
  after: { nodes: number; totalBytes: number }
  /** Largest retained growth first (ties: shallow growth, count growth, name, type). */
  classes: ClassDelta[]
  detectors: GrowthDetector[]
  /** By id only: totals over all classes. */
  newCount?: number
  deletedCount?: number
  allocatedBytes?: number
  freedBytes?: number
}

/** Summary of a `.heapsnapshot` or `.heapsnapshot.gz` file (recognised by content). */
export declare function summarize(snapshot: string, options?: SummarizeOptions): Promise<SnapshotSummary>
/** Class deltas, retainer paths of the classes that grew, growth detectors. */
export declare function diff(before: string, after: string, options?: DiffOptions): Promise<DiffReport>
/** Merged shortest retainer paths to the instances of `className`. */
export declare function retainers(snapshot: string, options: RetainersOptions): Promise<RetainerPath[]>
