// Claims due operations for a worker and hands them to its slots: the producer of the worker
// runtime. It claims up to the free slots plus `prefetch` per query (FOR UPDATE SKIP LOCKED), keeps
// what it claimed ahead in a local queue (see local-queue.ts), and starts the next row as soon as a
// slot frees.
import { errorMessage } from "../errors";
import type { Logger } from "../logger";
import { Loop } from "../loop";
import type { ClaimedRow, ClaimPolicy, QueueKey } from "../store/statements/claims";
import type { Store } from "../store/store";
import { keyOf, localQueue, type LocalQueue } from "./local-queue";

export interface ProducerOptions {
  workerId: string;
  /** Types this worker has handlers for: it claims nothing else. */
  types: readonly string[];
  concurrency: number;
  /** Rows claimed ahead of free slots: at most this many, or "auto" (see `ahead`). */
  prefetch: number | "auto";
  batchSize: number;
  leaseMs: number;
  pollIntervalMs: number;
  /** How claims choose among due rows; a fair claim goes on where this producer's last one stopped. */
  policy: ClaimPolicy;
}

/** With prefetch "auto": rows are claimed ahead for at most this long of work at the current pace… */
const AUTO_PREFETCH_HORIZON_MS = 200;
/** …and never more than this many. */
const AUTO_PREFETCH_MAX = 500;
/** The pace is handler starts per ms, averaged (exponentially) over about this long. */
const PACE_WINDOW_MS = 1_000;

export class Producer {
  private readonly queue: LocalQueue;
  private runningCount = 0;
  private stopping = false;
  private after: ClaimPolicy["after"];
  /**
   * The last claim found fewer due rows than it asked for: a freed slot is then no reason to claim
   * again (an empty claim per finished handler slowed every submit → start); new work arrives by
   * NOTIFY (`wake`) or the poll.
   */
  private starved = false;
  /**
   * New work was announced (NOTIFY, a row handed back) since the last claim: the next claim may go
   * past a full buffer, by up to `concurrency` rows (see `free`).
   */
  private announced = false;
  /** Handler starts per ms, decayed to `lastStart`. */
  private pace = 0;
  private lastStart = 0;
  private readonly loop: Loop;
  /** Queues announced while this worker had rows waiting, not claimed yet (see `announce`). */
  private readonly announcedQueues = new Map<string, QueueKey>();
  /** Rows the claims in flight may bring (see `held`). */
  private claiming = 0;
  /** The claim of announced queues in flight. */
  private announcing: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: ProducerOptions,
    private readonly logger: Logger,
    /**
     * Called with each claim's rows before any of them runs, and when the claim was sent
     * (performance.now()): their leases run from no earlier than that.
     */
    private readonly onClaimed: (rows: readonly ClaimedRow[], sentAt: number) => void,
    /** Runs a row; resolves when its slot is free again (its outcome may still be recording). */
    private readonly run: (row: ClaimedRow) => Promise<void>,
    /** Outcomes handed to the completer and not recorded yet: their rows are still held. */
    private readonly recording: () => number,
  ) {
    this.queue = localQueue(options.policy);
    this.loop = new Loop(() => this.claim());
  }

  /** Handlers running now. */
  get running(): number {
    return this.runningCount;
  }

  start(): void {
    this.stopping = false;
    this.loop.start();
  }

  /**
   * Claims again now: new work was notified, or a row went back to pending — in `queue`, when the
   * notification says which.
   */
  wake(queue?: QueueKey): void {
    if (queue) {
      if (!this.options.types.includes(queue.type)) return; // not work this worker can run
      if (this.claimsAnnounced(queue)) {
        this.announce(queue);
        return;
      }
    }
    this.wakeRegular();
  }

  private wakeRegular(): void {
    // Even if the claim it causes finds no room: the next freed slot must claim again.
    this.starved = false;
    this.announced = true;
    this.loop.wake();
  }

  /** Claims again if there may be due rows it had no room for (a slot or a held row was freed). */
  roomFreed(): void {
    if (!this.starved) this.loop.wake();
  }

  /** Stops claiming (after the claim in flight) and returns the claimed rows that never started. */
  async stop(): Promise<ClaimedRow[]> {
    this.stopping = true;
    await this.loop.stop();
    await this.announcing;
    this.announcedQueues.clear();
    return this.queue.takeAll();
  }

  /**
   * Whether new rows of `queue`, announced by a notification, get a claim of their own, next to the
   * regular claims (and not waiting for the one in flight): when claims are fair and none of that
   * queue's rows wait here already. A regular fair claim shares its rows between every queue with
   * due work, so a small tenant's batch came in two or three claims behind a big tenant's backlog,
   * each waiting for the one before (bench fairness, 2026-12-02: B–E's p99 submit → start, median
   * of 3, 50.0 ms before, 40.0 ms after, idle 13–15 ms). It takes no more than an announced regular
   * claim may (`free`). Not for a type with concurrency limits, whose claims must count what runs.
   */
  private claimsAnnounced(queue: QueueKey): boolean {
    const { policy } = this.options;
    return (
      policy.fair &&
      !this.stopping &&
      !this.queue.holds(queue) &&
      !policy.limits?.some((limit) => limit.type === queue.type)
    );
  }

  /** Claims `queue`'s due rows next to the regular claims, with the queues announced meanwhile. */
  private announce(queue: QueueKey): void {
    this.announcedQueues.set(keyOf(queue), queue);
    this.announcing ??= this.claimAnnounced().finally(() => {
      this.announcing = undefined;
    });
  }

  private async claimAnnounced(): Promise<void> {
    const { concurrency, workerId, leaseMs } = this.options;
    while (this.announcedQueues.size > 0 && !this.stopping) {
      const announced = [...this.announcedQueues.values()];
      this.announcedQueues.clear();
      const queues = announced.filter((queue) => !this.queue.holds(queue));
      const room = this.free(true);
      if (queues.length === 0 || room <= 0) {
        // Their earlier rows wait here, or there is no room now: the regular claims take the new
        // ones, in their turn (a starved loop would otherwise wait for its poll).
        this.wakeRegular();
        continue;
      }
      const taken = queues.slice(0, room);
      const perQueue = Math.max(1, Math.min(concurrency, Math.floor(room / taken.length)));
      const asked = taken.length * perQueue; // at most this many rows come back
      let rows: ClaimedRow[];
      this.claiming += asked;
      const sentAt = performance.now();
      try {
        rows = await this.store.claimAnnounced(taken, perQueue, workerId, leaseMs);
      } catch (error) {
        this.logger.error("claim of announced work failed; the regular claims take it", {
          error: errorMessage(error),
        });
        this.wakeRegular();
        continue;
      } finally {
        this.claiming -= asked;
      }
      this.onClaimed(rows, sentAt);
      this.queue.push(rows);
      this.pump();
      // The regular claims go on unless every announced queue gave rows, but not its whole share.
      // One left out, one whose earlier rows wait here, or one that gave its whole share may have
      // more due; so may one that gave nothing. (Before claims ran their UPDATE after the pick, in
      // operations_claim, a regular claim in flight could lock a queue's new rows and end without
      // them, and only the next one took them: a start a poll interval late, 2 in 45,000. The next
      // regular claim costs little, so the rule stays as a safeguard.)
      if (!everyQueueServed(announced, rows, perQueue)) this.wakeRegular();
    }
  }

  private async claim(): Promise<number> {
    const { batchSize, pollIntervalMs } = this.options;
    const free = this.free(this.announced);
    this.announced = false;
    if (this.stopping || free <= 0) return pollIntervalMs; // woken by roomFreed
    const want = Math.min(batchSize, free);
    let rows: ClaimedRow[];
    this.claiming += want;
    const sentAt = performance.now();
    try {
      rows = await this.store.claimDue(
        want,
        this.options.workerId,
        this.options.leaseMs,
        this.options.types,
        {
          ...this.options.policy,
          after: this.after,
        },
      );
    } catch (error) {
      this.logger.error("claim failed; retrying after the poll interval", { error: errorMessage(error) });
      return pollIntervalMs;
    } finally {
      this.claiming -= want;
    }
    const last = rows[rows.length - 1];
    if (last) this.after = { type: last.type, tenantId: last.tenantId };
    // (A short claim under concurrency limits may mean no slot, not no rows: a freed slot counts.)
    this.starved = rows.length < want && !this.options.policy.limits?.length;
    this.onClaimed(rows, sentAt);
    this.queue.push(rows);
    this.pump();
    return rows.length === want ? 0 : pollIntervalMs;
  }

  /**
   * How many rows the next claim may take. Rows whose outcomes wait to be recorded count as held:
   * when recording falls behind, claiming more would only make the next group commit larger and
   * later. When new work was `announced`, claims are fair and rows wait in the buffer, up to
   * `concurrency` more (no more than wait there, nor than the prefetch): another tenant's new rows
   * then join the fair local queue now, to run in turn with the buffered rows, rather than after
   * them (bench fairness, 2026-11-28, before this: B–E's p99 submit → start 3.95 × idle under A's
   * backlog). With nothing buffered, no prefetch, or handlers slow enough that "auto" claims
   * nothing ahead, new rows could not start here sooner, and an idle worker should have them; with
   * `fair: false` they would wait behind the buffer anyway.
   */
  private free(announced: boolean): number {
    const { concurrency, policy } = this.options;
    const held = this.held();
    const ahead = this.ahead();
    const target = concurrency + ahead;
    if (!announced || !policy.fair) return target - held;
    return Math.max(
      target - held,
      Math.min(concurrency, this.queue.length, ahead, target + concurrency - held),
    );
  }

  /**
   * Rows this worker holds: running, waiting here, waiting for their outcome to be recorded — or
   * asked for by a claim in flight (a regular claim and a claim of announced queues may overlap).
   */
  private held(): number {
    return this.runningCount + this.queue.length + this.recording() + this.claiming;
  }

  /**
   * How many rows to hold beyond the slots. "auto" claims ahead what this worker starts in
   * AUTO_PREFETCH_HORIZON_MS at its pace: hundreds for millisecond handlers (claims of 100 rather
   * than one per free slot: the drain's largest cost), none for handlers that take minutes — whose
   * rows would otherwise wait here while other workers sit idle.
   */
  private ahead(): number {
    const { prefetch } = this.options;
    if (prefetch !== "auto") return prefetch;
    const pace = this.pace * Math.exp(-(performance.now() - this.lastStart) / PACE_WINDOW_MS);
    return Math.min(AUTO_PREFETCH_MAX, Math.floor(pace * AUTO_PREFETCH_HORIZON_MS));
  }

  private started(): void {
    const now = performance.now();
    this.pace = this.pace * Math.exp(-(now - this.lastStart) / PACE_WINDOW_MS) + 1 / PACE_WINDOW_MS;
    this.lastStart = now;
  }

  private pump(): void {
    while (this.runningCount < this.options.concurrency && this.queue.length > 0) {
      const row = this.queue.shift()!;
      this.runningCount++;
      this.started();
      void this.run(row).finally(() => {
        this.runningCount--;
        this.pump();
        this.roomFreed();
      });
    }
  }
}

/** Whether each of `queues` gave at least one row in `rows` and fewer than `perQueue`. */
function everyQueueServed(
  queues: readonly QueueKey[],
  rows: readonly ClaimedRow[],
  perQueue: number,
): boolean {
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(keyOf(row), (counts.get(keyOf(row)) ?? 0) + 1);
  return queues.every((queue) => {
    const count = counts.get(keyOf(queue)) ?? 0;
    return count > 0 && count < perQueue;
  });
}
