// The worker's per-row abort: a signal made only when read, aborted the same as AbortController's.
import { LazyAbortController } from "../../src/execution/lazy-abort";

describe("LazyAbortController", () => {
  it("aborts a signal read before the abort, with the reason, firing its listeners once", () => {
    const stop = new LazyAbortController();
    const signal = stop.signal;
    const heard: unknown[] = [];
    signal.addEventListener("abort", () => heard.push(signal.reason));
    expect(signal.aborted).toBe(false);
    const reason = new Error("cancelled");
    stop.abort(reason);
    stop.abort(new Error("later"));
    expect(heard).toEqual([reason]);
    expect([stop.aborted, stop.reason, signal.aborted, signal.reason]).toEqual([true, reason, true, reason]);
  });

  it("hands out an aborted signal when it is first read after the abort, with the first reason", () => {
    const stop = new LazyAbortController();
    const reason = new Error("lease lost");
    stop.abort(reason);
    stop.abort(new Error("shutdown"));
    expect(stop.aborted).toBe(true);
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe(reason);
    expect(stop.signal).toBe(stop.signal);
  });

  it("is not aborted until asked", () => {
    const stop = new LazyAbortController();
    expect([stop.aborted, stop.reason, stop.signal.aborted]).toEqual([false, undefined, false]);
  });
});
