import { chunkSize, MAX_CHUNK, MIN_CHUNK } from '../src/storage/chunks';

describe('upload chunk size', () => {
  it('is a hundredth of the file between 1 and 8 MiB', () => {
    expect(chunkSize(0)).toBe(MIN_CHUNK);
    expect(chunkSize(2 * 1024 * 1024 + 12345)).toBe(MIN_CHUNK);
    expect(chunkSize(500 * 1024 * 1024)).toBe(Math.ceil((500 * 1024 * 1024) / 100));
    expect(chunkSize(10 * 1024 ** 3)).toBe(MAX_CHUNK);
  });

  it('sends a 2 MiB-and-a-bit file in three requests', () => {
    const size = 2 * 1024 * 1024 + 12345;
    expect(Math.ceil(size / chunkSize(size))).toBe(3);
  });
});
