/** The size of an upload's tus chunks (pure, tested with jest). */

export const MIN_CHUNK = 1024 * 1024;
export const MAX_CHUNK = 8 * 1024 * 1024;

/** About a hundredth of the file, so that the progress bar moves smoothly, within 1 to 8 MiB. */
export function chunkSize(size: number): number {
  return Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.ceil(size / 100)));
}
