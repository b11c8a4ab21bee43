/**
 * Buckets of a report sorted into classes: two buckets are of one class when
 * their slices have the same lengths, rate card, time-of-use window and month
 * length, so a VM that stays put costs the same in both. Consecutive buckets
 * of one class form a run.
 */
import type { Slice } from './timeline.js';

export interface BucketPlan {
  /** Index of the first slice of each bucket; one more entry for the end. */
  firstSlice: number[];
  /** For each class, one bucket of it (the first). */
  classBucket: number[];
  /** Consecutive buckets of one class, [start, end). */
  runs: Array<{ start: number; end: number; bucketClass: number }>;
}

/**
 * `eachOwnClass`: every bucket is a class of its own (when energy is priced: a host's machine
 * draws differently in every bucket, so two buckets never cost the same for sure).
 */
export function planBuckets(
  slices: readonly Slice[],
  bucketCount: number,
  eachOwnClass = false,
): BucketPlan {
  const firstSlice: number[] = [];
  for (let s = 0; s < slices.length; s++) {
    const bucket = slices[s]!.bucket;
    while (firstSlice.length <= bucket) firstSlice.push(s);
  }
  while (firstSlice.length <= bucketCount) firstSlice.push(slices.length);
  const classes = new Map<string, number>();
  const classBucket: number[] = [];
  const runs: BucketPlan['runs'] = [];
  for (let b = 0; b < bucketCount; b++) {
    let signature = eachOwnClass ? `${b};` : '';
    for (let s = firstSlice[b]!; s < firstSlice[b + 1]!; s++) {
      const slice = slices[s]!;
      signature += `${slice.end - slice.start}:${slice.card}:${slice.window}:${slice.monthMs};`;
    }
    let bucketClass = classes.get(signature);
    if (bucketClass === undefined) {
      bucketClass = classBucket.length;
      classes.set(signature, bucketClass);
      classBucket.push(b);
    }
    const previous = runs[runs.length - 1];
    if (previous && previous.bucketClass === bucketClass) previous.end = b + 1;
    else runs.push({ start: b, end: b + 1, bucketClass });
  }
  return { firstSlice, classBucket, runs };
}
