// Types of `leakguard/testing` (CommonJS and ESM). Guide: docs/testing.md.
import { AssertionError } from 'node:assert'

export interface AssertNoLeakOptions {
  /** Calls before anything is counted (caches fill, code compiles). Default 10. */
  warmup?: number
  /** Calls per round. Default 20. */
  iterations?: number
  /** Rounds in which a class must grow before it is suspected. Default 3. */
  rounds?: number
  /** Further rounds a suspected class must keep growing through before the test fails. Default 2. */
  confirmRounds?: number
  /** Instances a class must gain in every round to count as growing. Default: `iterations` (one per call). */
  threshold?: number
  /** How many of the top growing classes get a retainer path in the message. Default 3. */
  retainers?: number
  /** Parent directory of the private (0700) snapshot directory. Default os.tmpdir(). */
  dir?: string
  /** Class names never reported (as in the table: `Foo`, `(closure)`, `(string)`). */
  ignore?: string[]
}

export interface ExpectCollectedOptions {
  /** How long to keep collecting before failing, ms. Default 500. */
  timeoutMs?: number
  /** Parent directory of the private (0700) snapshot directory kept on failure. Default os.tmpdir(). */
  dir?: string
  /** What to call the object in the message. */
  name?: string
}

export interface RetainerStep {
  node: string
  type: string
  edge: string
  edgeType: string
  location?: string
}

export interface LeakRetainer {
  /** `(global) → sessions (property) → Map → table (internal) → UserRecord` */
  text: string
  steps: RetainerStep[]
  /** Instances of the class on this path in the last snapshot. */
  count?: number
  /** How many more there were on it than in the first counted snapshot. */
  growth?: number
  retainedBytes?: number
  /** Set instead of the fields above when no path could be read. */
  error?: string
}

export interface LeakClass {
  name: string
  type: string
  /** Instances gained per call of the scenario, over all rounds. */
  perCall: number
  bytesPerCall: number
  /** Instances gained over all rounds, and their shallow bytes. */
  grown: number
  bytes: number
  /** Instances gained in each round. */
  deltas: number[]
  /** For the top classes only. */
  retainer?: LeakRetainer
}

/** What a failed leak test throws: an AssertionError (`instanceof` holds) with leakguard's
 *  code instead of `ERR_ASSERTION` — declared as an interface over AssertionError without
 *  its `code`, since @types/node types that one as the literal `'ERR_ASSERTION'`. */
export interface LeakError extends Omit<AssertionError, 'code' | 'name'> {
  name: 'LeakError'
  code: 'ERR_LEAKGUARD_TEST_LEAK' | 'ERR_LEAKGUARD_TEST_NOT_COLLECTED'
  /** The snapshots kept on disk for the failure (delete them when done). */
  snapshots: string[]
  /** Their private directory. */
  dir: string
  /** assertNoLeak: the classes that grew in every round, user-visible ones first. */
  classes?: LeakClass[]
  rounds?: number
  iterations?: number
  durationMs?: number
  /** expectCollected: the path that still holds the object (null when it could not be tagged). */
  retainer?: LeakRetainer | { error: string } | null
  collections?: number
}
export declare const LeakError: {
  new (key: 'TEST_LEAK' | 'TEST_NOT_COLLECTED', message: string, extra?: object): LeakError
  readonly prototype: LeakError
}

/**
 * Run `scenario` warm-up times, then rounds of `iterations` calls with a full collection
 * and a heap snapshot after each; reject with a LeakError (ERR_LEAKGUARD_TEST_LEAK) when a
 * class of objects grows by at least `threshold` in every round. Bad options throw
 * synchronously; a second concurrent run rejects with ERR_LEAKGUARD_TEST_BUSY.
 */
export declare function assertNoLeak (scenario: () => unknown | Promise<unknown>, options?: AssertNoLeakOptions): Promise<void>

/**
 * Resolve when `target` (an object, or a function returning one or a promise of one) has
 * been collected; reject with a LeakError (ERR_LEAKGUARD_TEST_NOT_COLLECTED) naming the
 * path that still holds it otherwise. Prefer the function form: a variable of the caller
 * that still holds the object keeps it alive.
 */
export declare function expectCollected (target: object | (() => object | Promise<object>), options?: ExpectCollectedOptions): Promise<void>

/**
 * Two major collections with event-loop turns between, so that FinalizationRegistry and
 * weak callbacks run. Works without --expose-gc.
 */
export declare function collectGarbage (): Promise<void>

declare const testing: {
  assertNoLeak: typeof assertNoLeak
  expectCollected: typeof expectCollected
  collectGarbage: typeof collectGarbage
  LeakError: typeof LeakError
}
export default testing
