// import 'leakguard/testing/jest' (the CommonJS module).
import matcher from './jest.js'

export const { matchers, toLeak, install } = matcher
export default matcher
