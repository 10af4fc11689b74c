import { keepSecondsFor, resolveRetention, shortestKeep } from "../../src/domain/retention";

const DAY = 86_400;

describe("resolveRetention", () => {
  it("fills in the defaults: 7 days completed, 30 failed, 24 h delivered events, 30 days dead", () => {
    expect(resolveRetention(undefined)).toEqual({
      completedSeconds: 7 * DAY,
      failedSeconds: 30 * DAY,
      types: [],
      deliveredEventSeconds: 24 * 3600,
      deadEventSeconds: 30 * DAY,
      workerSeconds: 24 * 3600,
      chunkSize: 500,
      maxChunksPerPass: 20,
      intervalMs: 60_000,
    });
  });

  it("is off with false, and keeps a kind for ever with Infinity", () => {
    expect(resolveRetention(false)).toBeNull();
    const policy = resolveRetention({ failedDays: Infinity, deadEventDays: Infinity })!;
    expect(policy.failedSeconds).toBeNull();
    expect(policy.deadEventSeconds).toBeNull();
  });

  it("resolves per-type times, each falling back to the service's", () => {
    const policy = resolveRetention({ completedDays: 3, types: { "email.send": { completedDays: 1 } } })!;
    expect(keepSecondsFor(policy, "email.send", "completed")).toBe(DAY);
    expect(keepSecondsFor(policy, "email.send", "failed")).toBe(30 * DAY);
    expect(keepSecondsFor(policy, "other", "completed")).toBe(3 * DAY);
    expect(keepSecondsFor(policy, "other", "cancelled")).toBe(30 * DAY);
    expect(shortestKeep(policy)).toBe(DAY);
  });

  it("has no shortest time when every finished row is kept for ever", () => {
    expect(shortestKeep(resolveRetention({ completedDays: Infinity, failedDays: Infinity })!)).toBeNull();
  });

  it("refuses negative, NaN or fractional counts, naming the setting", () => {
    expect(() => resolveRetention({ deliveredEventHours: -1 })).toThrow("retention.deliveredEventHours");
    expect(() => resolveRetention({ completedDays: Number.NaN })).toThrow("retention.completedDays");
    expect(() => resolveRetention({ maxChunksPerPass: 1.5 })).toThrow("retention.maxChunksPerPass");
  });
});
