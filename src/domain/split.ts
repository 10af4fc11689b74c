// Splitting a batch's items into children, by count and/or by weight (the seed system split
// documents by token budget). Pure: no database, no clock.

/** How a batch's items are grouped into children. Both limits may be combined. */
export interface SplitRule {
  /** At most this many items per child. */
  maxItems?: number;
  /** At most this total weight per child; an item heavier than this alone gets a child of its own. */
  maxWeight?: number;
}

export interface Chunk<T> {
  /** Index of the chunk's first item in the submitted list. */
  firstIndex: number;
  items: T[];
  weight: number;
}

/** A weight that is not a finite number ≥ 0, with the index of the item that has it. */
export class InvalidWeightError extends Error {
  constructor(
    readonly itemIndex: number,
    readonly weight: unknown,
  ) {
    super(`weight of item ${itemIndex} must be a finite number >= 0, got ${String(weight)}`);
    this.name = "InvalidWeightError";
  }
}

/**
 * Groups items greedily, in order: an item joins the current chunk unless that would pass
 * `maxItems` or `maxWeight`, in which case it starts the next one. Order is preserved, every item
 * lands in exactly one chunk, and no chunk is empty. With no limit each item is its own chunk.
 */
export function splitIntoChunks<T>(
  items: readonly T[],
  rule: SplitRule,
  weigh: (item: T, index: number) => number = () => 1,
): Chunk<T>[] {
  const maxItems = rule.maxItems ?? (rule.maxWeight === undefined ? 1 : Infinity);
  const maxWeight = rule.maxWeight ?? Infinity;
  const chunks: Chunk<T>[] = [];
  let current: Chunk<T> | undefined;
  items.forEach((item, index) => {
    const weight = weigh(item, index);
    if (typeof weight !== "number" || !Number.isFinite(weight) || weight < 0) {
      throw new InvalidWeightError(index, weight);
    }
    const fits = current && current.items.length < maxItems && current.weight + weight <= maxWeight;
    if (!fits) {
      current = { firstIndex: index, items: [], weight: 0 };
      chunks.push(current);
    }
    current!.items.push(item);
    current!.weight += weight;
  });
  return chunks;
}
