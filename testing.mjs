// import 'leakguard/testing' (the CommonJS module, so both forms share one lock and state).
import testing from './testing.js'

export const { assertNoLeak, expectCollected, collectGarbage, LeakError } = testing
export default testing
