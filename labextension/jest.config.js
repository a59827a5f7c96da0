/** jest for the pure helpers (formatting, slots, chunk sizes): TypeScript through ts-jest, in Node. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] }
};
