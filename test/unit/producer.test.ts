// The producer's claim scheduling, against a store whose claims the test answers: what it claims
// next, and when, after each answer.
import { silentLogger } from "../../src";
import { Producer, type ProducerOptions } from "../../src/execution/producer";
import type { ClaimedRow } from "../../src/store/statements/claims";
import type { Store } from "../../src/store/store";

/** A claim the test answers when it wants. */
function pending<T>() {
  let answer: (value: T) => void = () => undefined;
  const promise = new Promise<T>((resolve) => (answer = resolve));
  return { promise, answer };
}

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function producerWith(
  store: Store,
  options: Partial<ProducerOptions> = {},
  run: () => Promise<void> = () => Promise.resolve(),
): Producer {
  return new Producer(
    store,
    {
      workerId: "w",
      types: ["task"],
      concurrency: 16,
      prefetch: 0,
      batchSize: 4, // the regular claim in flight leaves room for the notified queue's own claim
      leaseMs: 30_000,
      pollIntervalMs: 60_000,
      policy: { fair: true },
      ...options,
    },
    silentLogger,
    () => undefined,
    run,
    () => 0,
  );
}

const row = (id: string, tenantId: string): ClaimedRow => ({
  id,
  tenantId,
  type: "task",
  batchId: null,
  payload: {},
  attempts: 1,
  maxAttempts: 3,
  lockToken: id,
  pickOrder: 1,
});

/** A store whose every claim waits for the test's answer. */
function answeredStore() {
  const regular: ReturnType<typeof pending<ClaimedRow[]>>[] = [];
  const announced: ReturnType<typeof pending<ClaimedRow[]>>[] = [];
  const store = {
    claimDue: () => {
      const claim = pending<ClaimedRow[]>();
      regular.push(claim);
      return claim.promise;
    },
    claimAnnounced: () => {
      const claim = pending<ClaimedRow[]>();
      announced.push(claim);
      return claim.promise;
    },
  } as unknown as Store;
  return { store, regular, announced };
}

// In the database: a regular claim's pick function locked the notified rows (each of its queries
// sees what committed before it ran), its UPDATE (whose snapshot is older) could not take them, and
// the notified queue's own claim skipped them as locked — so both claims came back without them.
/** A producer whose first regular claim is in flight when queue B is notified and claimed on its own. */
async function notifiedDuringARegularClaim() {
  const { store, regular, announced } = answeredStore();
  const producer = producerWith(store);
  producer.start();
  await until("the first regular claim", () => regular.length === 1);
  producer.wake({ type: "task", tenantId: "B" });
  await until("the notified queue's claim", () => announced.length === 1);
  return { producer, regular, announced };
}

describe("Producer", () => {
  it("claims again once the regular claim in flight ends, when a notified queue's claim got nothing", async () => {
    const { producer, regular, announced } = await notifiedDuringARegularClaim();
    announced[0]!.answer([]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    regular[0]!.answer([]);
    await until("another regular claim, not the poll a minute later", () => regular.length === 2);
    regular[1]!.answer([]);
    await producer.stop();
  });

  it("claims again at once when the notified queue's claim gets nothing after the regular claim ended", async () => {
    const { producer, regular, announced } = await notifiedDuringARegularClaim();
    regular[0]!.answer([]); // the regular claim ends first: the loop would wait its poll
    await new Promise((resolve) => setTimeout(resolve, 0));
    announced[0]!.answer([]);
    await until("another regular claim, not the poll a minute later", () => regular.length === 2);
    regular[1]!.answer([]);
    await producer.stop();
  });
});

describe("Producer, a queue announced again while its rows wait here", () => {
  it("leaves the new rows to a regular claim at once, not to the poll", async () => {
    const { store, regular, announced } = answeredStore();
    const slots: (() => void)[] = [];
    const producer = producerWith(
      store,
      { concurrency: 2, prefetch: 2, batchSize: 2 },
      () => new Promise<void>((resolve) => slots.push(resolve)), // handlers that keep their slots
    );
    producer.start();
    await until("the first regular claim", () => regular.length === 1);
    regular[0]!.answer([row("a1", "A"), row("a2", "A")]); // both slots busy from now on
    await until("the next regular claim", () => regular.length === 2);
    regular[1]!.answer([]); // nothing more due: the loop waits for its poll
    await until("A's rows running", () => slots.length === 2);
    producer.wake({ type: "task", tenantId: "B" });
    await until("B's claim", () => announced.length === 1);
    producer.wake({ type: "task", tenantId: "B" }); // B's second batch, while the first claim is in flight
    announced[0]!.answer([row("b1", "B")]); // less than its share; it waits here behind A's rows
    await until(
      "a regular claim for B's second batch, not the poll a minute later",
      () => regular.length === 3,
    );
    regular[2]!.answer([]);
    for (const free of slots) free();
    await producer.stop();
  });
});
