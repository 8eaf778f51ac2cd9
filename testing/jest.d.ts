// Types of `leakguard/testing/jest`: the `toLeak` matcher for Jest and Vitest.
import type { AssertNoLeakOptions } from '../testing'

export interface LeakMatchers<R = unknown> {
  /** `await expect(scenario).not.toLeak(options?)`: fails with the table of growing classes. */
  toLeak (options?: AssertNoLeakOptions): Promise<R>
}

export declare function toLeak (this: unknown, received: () => unknown, options?: AssertNoLeakOptions): Promise<{ pass: boolean, message: () => string }>
export declare const matchers: { toLeak: typeof toLeak }
/** expect.extend(matchers) on the given expect (default: the global one). */
export declare function install<E extends { extend (m: object): void }> (expect?: E): E

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    // eslint-disable-next-line @typescript-eslint/no-empty-interface
    interface Matchers<R> extends LeakMatchers<R> {}
  }
}

declare const jestMatchers: { matchers: typeof matchers, toLeak: typeof toLeak, install: typeof install }
export default jestMatchers
