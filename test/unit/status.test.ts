import { backoffDelayMs } from "../../src/domain/backoff";
import { batchOutcome, canTransition, OPERATION_STATUSES } from "../../src/domain/status";

describe("batchOutcome", () => {
  it("is null while any child is not terminal", () => {
    expect(batchOutcome({ childCount: 3, completed: 2, failed: 0, cancelled: 0 })).toBeNull();
  });
  it("is completed when every child completed", () => {
    expect(batchOutcome({ childCount: 3, completed: 3, failed: 0, cancelled: 0 })).toBe("completed");
  });
  it("is failed when any child failed, whatever else", () => {
    expect(batchOutcome({ childCount: 3, completed: 1, failed: 1, cancelled: 1 })).toBe("failed");
  });
  it("counts a cancelled child as terminal (the seed system's parents waited forever)", () => {
    expect(batchOutcome({ childCount: 3, completed: 2, failed: 0, cancelled: 1 })).toBe("cancelled");
  });
});

describe("operation state machine", () => {
  it("lets terminal states leave only by an explicit retry", () => {
    expect(OPERATION_STATUSES.filter((to) => canTransition("completed", to))).toEqual([]);
    expect(OPERATION_STATUSES.filter((to) => canTransition("failed", to))).toEqual(["pending"]);
    expect(OPERATION_STATUSES.filter((to) => canTransition("cancelled", to))).toEqual(["pending"]);
  });
  it("never goes from pending straight to a result", () => {
    expect(canTransition("pending", "completed")).toBe(false);
    expect(canTransition("pending", "failed")).toBe(false);
  });
});

describe("backoffDelayMs", () => {
  const policy = { baseMs: 1000, maxMs: 60_000, jitter: 0 };
  it("doubles per attempt and stops at the cap", () => {
    expect([1, 2, 3, 4].map((attempt) => backoffDelayMs(attempt, policy))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffDelayMs(30, policy)).toBe(60_000);
    expect(backoffDelayMs(10_000, policy)).toBe(60_000);
  });
  it("draws the jitter fraction at random, within [delay·(1-jitter), delay]", () => {
    const jittery = { ...policy, jitter: 0.5 };
    expect(backoffDelayMs(3, jittery, () => 0)).toBe(2000);
    expect(backoffDelayMs(3, jittery, () => 0.999999)).toBe(4000);
  });
});
