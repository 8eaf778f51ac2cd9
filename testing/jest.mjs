// import 'leakguard/testing/jest' (the CommonJS module).
import jest from './jest.js'

export const { matchers, toLeak, install } = jest
export default jest
