import { InvalidWeightError, splitIntoChunks } from "../../src/domain/split";

const sizes = (chunks: { items: unknown[] }[]) => chunks.map((chunk) => chunk.items.length);

describe("splitIntoChunks", () => {
  it("puts each item in its own chunk when no limit is given", () => {
    expect(sizes(splitIntoChunks([1, 2, 3], {}))).toEqual([1, 1, 1]);
  });

  it("groups by count, keeping order and every item", () => {
    const chunks = splitIntoChunks([1, 2, 3, 4, 5, 6, 7], { maxItems: 3 });
    expect(chunks.map((chunk) => chunk.items)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(chunks.map((chunk) => chunk.firstIndex)).toEqual([0, 3, 6]);
  });

  it("groups by weight (the seed system's token budget)", () => {
    const tokens = [400, 300, 200, 900, 100, 100];
    const chunks = splitIntoChunks(tokens, { maxWeight: 1000 }, (t) => t);
    expect(chunks.map((chunk) => chunk.items)).toEqual([[400, 300, 200], [900, 100], [100]]);
    expect(chunks.every((chunk) => chunk.weight <= 1000)).toBe(true);
  });

  it("gives an item heavier than the budget a chunk of its own", () => {
    const chunks = splitIntoChunks([10, 5000, 10], { maxWeight: 100 }, (t) => t);
    expect(chunks.map((chunk) => chunk.items)).toEqual([[10], [5000], [10]]);
  });

  it("applies both limits together", () => {
    const chunks = splitIntoChunks([1, 1, 1, 50, 50, 1], { maxItems: 2, maxWeight: 60 }, (t) => t);
    expect(chunks.map((chunk) => chunk.items)).toEqual([
      [1, 1],
      [1, 50],
      [50, 1],
    ]);
  });

  it.each([[-1], [Number.NaN], [Number.POSITIVE_INFINITY], ["3" as unknown as number]])(
    "refuses the weight %p with the item's index",
    (bad) => {
      const weigh = (item: number) => (item === 2 ? bad : 1);
      expect(() => splitIntoChunks([1, 2, 3], { maxWeight: 10 }, weigh)).toThrow(
        expect.objectContaining({ itemIndex: 1 }) as unknown as InvalidWeightError,
      );
    },
  );

  it("never loses or duplicates an item (random sizes)", () => {
    for (let round = 0; round < 200; round++) {
      const items = Array.from({ length: Math.floor(Math.random() * 60) }, (_, i) => ({
        i,
        w: Math.random() * 10,
      }));
      const maxItems = 1 + Math.floor(Math.random() * 8);
      const chunks = splitIntoChunks(items, { maxItems, maxWeight: 15 }, (item) => item.w);
      expect(chunks.flatMap((chunk) => chunk.items)).toEqual(items);
      for (const chunk of chunks) {
        expect(chunk.items.length).toBeGreaterThan(0);
        expect(chunk.items.length).toBeLessThanOrEqual(maxItems);
        if (chunk.items.length > 1) expect(chunk.weight).toBeLessThanOrEqual(15);
      }
    }
  });
});
