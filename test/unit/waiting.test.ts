import {
  queueKey,
  batchWaitingReason,
  formatClock,
  formatDuration,
  isLive,
  operationWaitingReason,
  queueWaitingReason,
  type WaitingBatch,
  type WaitingContext,
  type WaitingOperation,
  type WorkerSeen,
} from "../../src/domain/waiting";

const now = new Date("2026-11-28T12:00:00.000Z");
const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);

function worker(overrides: Partial<WorkerSeen> = {}): WorkerSeen {
  return {
    id: "host:1:abc",
    types: ["documents.ingest"],
    concurrency: 4,
    running: 0,
    heartbeatMs: 10_000,
    seenAt: at(-5),
    stoppedAt: null,
    ...overrides,
  };
}

function op(overrides: Partial<WaitingOperation> = {}): WaitingOperation {
  return {
    type: "documents.ingest",
    tenantId: "acme",
    status: "pending",
    attempts: 0,
    maxAttempts: 3,
    runAt: at(-1),
    lockedBy: null,
    lockedUntil: null,
    cancelRequestedAt: null,
    error: null,
    ...overrides,
  };
}

const ctx = (workers: WorkerSeen[] = [worker()], stallAfterMs?: number): WaitingContext => ({
  now,
  workers,
  stallAfterMs,
});

describe("operationWaitingReason", () => {
  it("has no reason for a finished operation", () => {
    for (const status of ["completed", "failed", "cancelled"] as const) {
      expect(operationWaitingReason(op({ status }), ctx())).toBeNull();
    }
  });

  it("says when a scheduled operation is due", () => {
    expect(operationWaitingReason(op({ runAt: at(42) }), ctx())).toEqual({
      code: "scheduled",
      severity: "wait",
      text: "Due at 12:00:42 UTC (in 42 s).",
      until: at(42),
    });
  });

  it("says which attempt failed and until when it backs off", () => {
    const reason = operationWaitingReason(
      op({
        runAt: at(90),
        attempts: 2,
        error: { name: "Error", message: "503", retryable: true, attempt: 2 },
      }),
      ctx(),
    );
    expect(reason).toEqual({
      code: "backing_off",
      severity: "wait",
      text: "Backing off after attempt 2 of 3 failed, until 12:01:30 UTC (in 1 min 30 s).",
      until: at(90),
    });
  });

  it("names the lease holder and the lease end of a running operation", () => {
    const reason = operationWaitingReason(
      op({ status: "processing", attempts: 1, lockedBy: "host:1:abc", lockedUntil: at(25) }),
      ctx(),
    );
    expect(reason).toMatchObject({
      code: "running",
      severity: "ok",
      text: "Held by worker host:1:abc until 12:00:25 UTC (in 25 s) (attempt 1 of 3).",
    });
  });

  it("says when the lease holder is no longer seen", () => {
    const reason = operationWaitingReason(
      op({ status: "processing", attempts: 1, lockedBy: "host:1:abc", lockedUntil: at(25) }),
      ctx([worker({ seenAt: at(-120) })]),
    );
    expect(reason?.text).toBe(
      "Held by worker host:1:abc (not seen for 2 min) until 12:00:25 UTC (in 25 s) (attempt 1 of 3).",
    );
  });

  it("flags a lease that ran out, and what the reaper will make of it", () => {
    const expired = op({ status: "processing", attempts: 3, lockedBy: "w", lockedUntil: at(-10) });
    expect(operationWaitingReason(expired, ctx())).toMatchObject({
      code: "lease_expired",
      severity: "stuck",
      text: "The lease of worker w expired at 11:59:50 UTC (10 s ago); the reaper will take it back as failed (no attempts left).",
    });
  });

  it("tells a cancel request, a cancelled batch and a fail_fast sibling apart", () => {
    const running = op({
      status: "processing",
      attempts: 1,
      lockedBy: "w",
      lockedUntil: at(20),
      cancelRequestedAt: at(-3),
    });
    const stopping = "waiting for worker w to stop its handler (lease until 12:00:20 UTC (in 20 s))";
    expect(operationWaitingReason(running, ctx())?.text).toBe(
      `Cancel requested at 11:59:57 UTC (3 s ago); ${stopping}.`,
    );
    expect(
      operationWaitingReason(running, ctx(), {
        failurePolicy: "wait_all",
        failedCount: 0,
        cancelledAt: at(-3),
      }),
    ).toMatchObject({
      code: "batch_cancelled",
      text: `Batch cancelled at 11:59:57 UTC (3 s ago); ${stopping}.`,
    });
    expect(
      operationWaitingReason(running, ctx(), {
        failurePolicy: "fail_fast",
        failedCount: 1,
        cancelledAt: null,
      }),
    ).toMatchObject({
      code: "fail_fast",
      text: `A sibling failed in this fail_fast batch: cancel requested at 11:59:57 UTC (3 s ago); ${stopping}.`,
    });
  });

  it("calls a row due moments ago fine when a worker handles its type", () => {
    expect(operationWaitingReason(op({ runAt: at(-4) }), ctx())).toEqual({
      code: "due",
      severity: "ok",
      text: 'Due since 11:59:56 UTC (4 s ago); waiting to be claimed — 1 live worker handles "documents.ingest".',
    });
  });

  it("says no worker has claimed a due row, and that none handles its type", () => {
    const stuck = op({ runAt: at(-45) });
    expect(operationWaitingReason(stuck, ctx([worker({ types: ["email.send"] })]))).toEqual({
      code: "no_worker",
      severity: "stuck",
      text: 'No worker has claimed this due row for 45 s — no live worker handles "documents.ingest" (is a worker for this type running?).',
    });
    // A stopped worker or one not seen for three heartbeats does not count.
    expect(operationWaitingReason(stuck, ctx([worker({ stoppedAt: at(-60) })]))?.code).toBe("no_worker");
    expect(operationWaitingReason(stuck, ctx([worker({ seenAt: at(-36) })]))?.code).toBe("no_worker");
  });

  it("says the workers are busy when every live one is full", () => {
    const reason = operationWaitingReason(
      op({ runAt: at(-45) }),
      ctx([worker({ running: 4 }), worker({ id: "w2", running: 4 })]),
    );
    expect(reason).toEqual({
      code: "workers_busy",
      severity: "wait",
      text: 'Due for 45 s: all 2 live workers that handle "documents.ingest" are busy.',
    });
  });

  it("flags a due row unclaimed although a worker has free slots", () => {
    expect(operationWaitingReason(op({ runAt: at(-45) }), ctx([worker({ running: 1 })]))).toMatchObject({
      code: "unclaimed",
      severity: "stuck",
    });
  });

  it("takes the stall threshold from the context", () => {
    expect(operationWaitingReason(op({ runAt: at(-10) }), ctx([], 5_000))?.code).toBe("no_worker");
    expect(operationWaitingReason(op({ runAt: at(-10) }), ctx([], 60_000))?.code).toBe("due");
  });
});

describe("batchWaitingReason", () => {
  const batch = (overrides: Partial<WaitingBatch> = {}): WaitingBatch => ({
    type: "documents.ingest",
    tenantId: "acme",
    status: "processing",
    cancelledAt: null,
    due: 0,
    oldestDueAt: null,
    scheduled: 0,
    nextRunAt: null,
    running: 0,
    cancelRequested: 0,
    leaseExpired: 0,
    ...overrides,
  });

  it("has no reason for a finished batch", () => {
    expect(batchWaitingReason(batch({ status: "completed" }), ctx())).toBeNull();
  });

  it("sums up the children, the most worrying part deciding the code", () => {
    const reason = batchWaitingReason(
      batch({ running: 2, due: 5, oldestDueAt: at(-40), scheduled: 3, nextRunAt: at(30) }),
      ctx([worker({ types: ["other"] })]),
    );
    expect(reason).toEqual({
      code: "no_worker",
      severity: "stuck",
      text:
        "2 running · 5 due: no worker has claimed these 5 due rows for 40 s — no live worker handles " +
        '"documents.ingest" (is a worker for this type running?) · 3 not due before 12:00:30 UTC (in 30 s).',
    });
  });

  it("counts due children in the sentence when they have waited only moments", () => {
    expect(batchWaitingReason(batch({ due: 3, oldestDueAt: at(-2) }), ctx())?.text).toBe(
      '3 due since 11:59:58 UTC (2 s ago); waiting to be claimed — 1 live worker handles "documents.ingest".',
    );
  });

  it("says a batch is being cancelled while its running children stop", () => {
    expect(
      batchWaitingReason(batch({ running: 2, cancelRequested: 2, cancelledAt: at(-5) }), ctx()),
    ).toMatchObject({
      code: "batch_cancelled",
      text: "Cancelled at 11:59:55 UTC (5 s ago): waiting for 2 running to stop.",
    });
  });

  it("flags expired leases and a batch with nothing left to move", () => {
    expect(batchWaitingReason(batch({ leaseExpired: 1 }), ctx())?.severity).toBe("stuck");
    expect(batchWaitingReason(batch(), ctx())?.text).toContain("the reaper reconciles it");
  });
});

describe("queueWaitingReason", () => {
  it("is null for a queue with nothing due, and the due rule otherwise", () => {
    expect(
      queueWaitingReason({ type: "t", tenantId: "acme", claimable: 0, oldestClaimableAgeSeconds: 0 }, ctx()),
    ).toBeNull();
    expect(
      queueWaitingReason(
        { type: "documents.ingest", tenantId: "acme", claimable: 12, oldestClaimableAgeSeconds: 95 },
        ctx([]),
      ),
    ).toMatchObject({ code: "no_worker", text: expect.stringContaining("these 12 due rows for 1 min 35 s") });
  });
});

describe("waiting for a slot (concurrency limits)", () => {
  const slots = (running: [string, number][]) => ({
    ...ctx(),
    slots: {
      limits: { "documents.ingest": { total: 5, perTenant: 2 } },
      runningByType: new Map([["documents.ingest", running.reduce((sum, [, n]) => sum + n, 0)]]),
      runningByQueue: new Map(running.map(([tenant, n]) => [queueKey("documents.ingest", tenant), n])),
    },
  });

  it("names the per-type limit when the type runs as many as it may", () => {
    expect(
      operationWaitingReason(
        op(),
        slots([
          ["acme", 2],
          ["globex", 3],
        ]),
      ),
    ).toMatchObject({
      code: "waiting_for_slot",
      severity: "wait",
      text: expect.stringContaining("runs at most 5 at once (limit per type), and 5 are running"),
    });
  });

  it("names the per-tenant limit when this tenant runs as many as it may, and not for another tenant", () => {
    const context = slots([["acme", 2]]);
    expect(operationWaitingReason(op(), context)?.text).toContain("at most 2 at once for tenant acme");
    expect(operationWaitingReason(op({ tenantId: "globex" }), context)?.code).toBe("due");
  });
});

describe("helpers", () => {
  it("formats durations and clock times", () => {
    expect(
      [0, 999, 42_000, 60_000, 185_000, 3_600_000, 7_440_000, 90_000_000, 86_400_000].map(formatDuration),
    ).toEqual(["0 s", "1 s", "42 s", "1 min", "3 min 5 s", "1 h", "2 h 4 min", "1 d 1 h", "1 d"]);
    expect(formatClock(at(60), now)).toBe("12:01:00 UTC");
    expect(formatClock(new Date("2026-11-27T23:59:59Z"), now)).toBe("2026-11-27 23:59:59 UTC");
  });

  it("counts a worker live for three heartbeats (and 5 s) after it was seen, until it stops", () => {
    expect(isLive(worker({ seenAt: at(-35) }), now)).toBe(true);
    expect(isLive(worker({ seenAt: at(-36) }), now)).toBe(false);
    expect(isLive(worker({ stoppedAt: at(-1) }), now)).toBe(false);
  });
});
