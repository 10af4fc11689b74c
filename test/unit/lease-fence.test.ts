// A holder's own deadline for a lease (domain/lease.ts) and the worker's fence that acts on it.
import { leaseMarginMs, localLeaseDeadline } from "../../src/domain/lease";
import { LeaseFence } from "../../src/execution/leases";

describe("a lease's local deadline", () => {
  it("is the send time plus the lease, less a tenth of it kept as margin (10 ms to 5 s)", () => {
    expect(leaseMarginMs(30_000)).toBe(3_000);
    expect(leaseMarginMs(1_000)).toBe(100);
    expect(leaseMarginMs(50)).toBe(10);
    expect(leaseMarginMs(600_000)).toBe(5_000);
    expect(localLeaseDeadline(1_000, 30_000)).toBe(28_000);
  });
});

describe("LeaseFence", () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it("calls expired once per claim whose deadline passes without an extension", () => {
    const expired: string[] = [];
    const fence = new LeaseFence(1_000, (token) => expired.push(token));
    fence.granted(["a", "b"], performance.now());
    jest.advanceTimersByTime(500);
    fence.extended(["a"], performance.now()); // a's deadline moves to 500 + 900
    jest.advanceTimersByTime(399);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1); // 900 ms after b's grant
    expect(expired).toEqual(["b"]);
    jest.advanceTimersByTime(499);
    expect(expired).toEqual(["b"]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(["b", "a"]);
    jest.advanceTimersByTime(10_000);
    expect(expired).toEqual(["b", "a"]);
  });

  it("never revives an expired claim, and forgets a released one", () => {
    const expired: string[] = [];
    const fence = new LeaseFence(1_000, (token) => expired.push(token));
    const sent = performance.now();
    fence.granted(["a", "b"], sent);
    fence.released("b");
    jest.advanceTimersByTime(900);
    expect(expired).toEqual(["a"]);
    fence.extended(["a"], performance.now()); // an extension heard back too late
    jest.advanceTimersByTime(5_000);
    expect(expired).toEqual(["a"]);
  });

  it("expires claims at once when the claim's answer came back past their deadline", () => {
    const expired: string[] = [];
    const fence = new LeaseFence(1_000, (token) => expired.push(token));
    const sent = performance.now();
    jest.advanceTimersByTime(950); // the claim was held up in the network
    fence.granted(["a", "b"], sent);
    expect(expired).toEqual(["a", "b"]); // synchronously: before the worker hands them to a slot
  });

  it("does not move a deadline back for an extension sent before the last one", () => {
    const expired: string[] = [];
    const fence = new LeaseFence(1_000, (token) => expired.push(token));
    const first = performance.now();
    jest.advanceTimersByTime(300);
    fence.granted(["a"], performance.now()); // deadline 1,200
    fence.extended(["a"], first); // 900: older, ignored
    jest.advanceTimersByTime(899);
    expect(expired).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(expired).toEqual(["a"]);
  });
});
