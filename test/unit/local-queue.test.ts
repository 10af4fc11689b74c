import { localQueue } from "../../src/execution/local-queue";
import type { ClaimedRow } from "../../src/store/statements/claims";

let next = 0;
function rows(tenantId: string, count: number, type = "task"): ClaimedRow[] {
  return Array.from({ length: count }, () => ({
    id: `${tenantId}-${next++}`,
    tenantId,
    batchId: null,
    type,
    payload: null,
    attempts: 1,
    maxAttempts: 3,
    lockToken: "token",
    pickOrder: 0,
  }));
}

function take(queue: ReturnType<typeof localQueue>, count: number): string[] {
  return Array.from({ length: count }, () => queue.shift()?.tenantId ?? "-");
}

describe("fair local queue", () => {
  it("starts a small tenant's rows between a big tenant's, not after them", () => {
    const queue = localQueue({ fair: true });
    queue.push(rows("a", 400));
    expect(take(queue, 2)).toEqual(["a", "a"]);
    queue.push([...rows("b", 2), ...rows("c", 1)]);
    expect(take(queue, 7)).toEqual(["b", "c", "a", "b", "a", "a", "a"]);
    expect(queue.length).toBe(400 - 6);
  });

  it("gives a tenant named like an Object property the default weight, not Object's", () => {
    const queue = localQueue({ fair: true });
    queue.push([...rows("constructor", 4), ...rows("b", 4)]);
    expect(take(queue, 4)).toEqual(["constructor", "b", "constructor", "b"]);
  });

  it("keeps each queue's claim order", () => {
    const queue = localQueue({ fair: true });
    const a = rows("a", 5);
    const b = rows("b", 5);
    queue.push([...a, ...b]);
    const started = Array.from({ length: 10 }, () => queue.shift()!);
    expect(started.filter((row) => row.tenantId === "a")).toEqual(a);
    expect(started.filter((row) => row.tenantId === "b")).toEqual(b);
    expect(queue.shift()).toBeUndefined();
  });

  it("shares by weight, fractional weights included", () => {
    const queue = localQueue({ fair: true, weights: { heavy: 3, light: 0.5 } });
    queue.push([...rows("heavy", 600), ...rows("plain", 600), ...rows("light", 600)]);
    const counts: Record<string, number> = {};
    for (const tenant of take(queue, 450)) counts[tenant] = (counts[tenant] ?? 0) + 1;
    expect(counts).toEqual({ heavy: 300, plain: 100, light: 50 });
  });

  it("treats the same tenant's rows of two types as two queues", () => {
    const queue = localQueue({ fair: true });
    queue.push([...rows("a", 3, "x"), ...rows("a", 3, "y")]);
    expect(Array.from({ length: 4 }, () => queue.shift()!.type)).toEqual(["x", "y", "x", "y"]);
  });

  it("hands back everything at stop", () => {
    const queue = localQueue({ fair: true });
    queue.push([...rows("a", 3), ...rows("b", 2)]);
    expect(queue.takeAll()).toHaveLength(5);
    expect(queue.length).toBe(0);
  });
});

describe("FIFO local queue", () => {
  it("starts rows in claim order", () => {
    const queue = localQueue({ fair: false });
    queue.push(rows("a", 3));
    queue.push(rows("b", 1));
    expect(take(queue, 5)).toEqual(["a", "a", "a", "b", "-"]);
  });
});
