// How fast a relay catches up on deliveries left behind (a subscriber that was down, a crash after
// commit): not part of `npm run bench`, a tool for whoever optimises the outbox.
//
//   npx tsx bench/profile-relay.ts [--events 20000] [--batch-size 100] [--runs 3]
//   npx tsx bench/profile-relay.ts --latency [--samples 300]
//
// On a database of its own (DATABASE_URL names the server): `events` events, each with a due
// delivery for subscriber "late", written set-based; then one relay of a service that has "late"
// (an in-process subscriber that counts) runs passes until one claims nothing. Prints deliveries/s
// per run and their median, and checks that every delivery was made once and recorded.
// --latency: a writing process without the subscriber submits operations one at a time; a worker
// with `listen` in another service has the subscriber, and its relay delivers: the time from each
// submit's return to the delivery, p50 and p99.
import { parseArgs } from "node:util";
import { applyMigrations, createOperations } from "../src";
import { analyzeAndCheckpoint, withClient } from "./common";
import { median, percentile, round } from "./stats";
import { createDatabase, databaseUrl, dropDatabase } from "./steps";
import { benchTypes, one, ourConnection } from "./systems";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: "20000" },
    "batch-size": { type: "string", default: "100" },
    runs: { type: "string", default: "3" },
    latency: { type: "boolean", default: false },
    samples: { type: "string", default: "300" },
  },
});
const events = Number(args.events);
const batchSize = Number(args["batch-size"]);
const database = "po_bench_profile_relay";
const url = databaseUrl(database);

async function run(): Promise<number> {
  await createDatabase(database);
  try {
    await withClient(url, async (client) => {
      await applyMigrations(client);
      await client.query(`INSERT INTO operation_subscribers (name, topics) VALUES ('late', '{}')`);
      await client.query(
        `INSERT INTO operation_outbox (tenant_id, topic, aggregate_id, payload)
         SELECT 'bench', 'bench.event', gen_random_uuid(), jsonb_build_object('n', g) FROM generate_series(1, $1) g`,
        [events],
      );
      await client.query(
        `INSERT INTO operation_deliveries (event_id, subscriber) SELECT id, 'late' FROM operation_outbox`,
      );
    });
    await analyzeAndCheckpoint(url);
    const connection = ourConnection(url);
    try {
      const seen = new Set<string>();
      let deliveries = 0;
      const ops = createOperations({
        ...connection.client,
        types: benchTypes,
        subscribers: [{ name: "late", deliver: (event) => void (deliveries++, seen.add(event.id)) }],
      });
      await ops.ready();
      const relay = ops.createRelay({ batchSize });
      const started = performance.now();
      while ((await relay.runOnce()).claimed > 0);
      const ms = performance.now() - started;
      const left = await one(
        url,
        `SELECT count(*) AS n FROM operation_deliveries WHERE delivered_at IS NULL`,
      );
      if (deliveries !== events || seen.size !== events || left !== 0) {
        throw new Error(
          `${deliveries} deliveries of ${seen.size} events for ${events}; ${left} left unrecorded`,
        );
      }
      return (events / ms) * 1000;
    } finally {
      await connection.close();
    }
  } finally {
    await dropDatabase(database);
  }
}

async function latency(): Promise<void> {
  await createDatabase(database);
  const writing = ourConnection(url);
  const receiving = ourConnection(url);
  try {
    await withClient(url, (client) => applyMigrations(client));
    let delivered: (() => void) | undefined;
    const receiver = createOperations({
      ...receiving.client,
      types: benchTypes,
      subscribers: [{ name: "remote", deliver: () => delivered?.() }],
    });
    const worker = receiver.createWorker({
      handlers: { warm: () => undefined },
      listen: { connectionString: url },
    });
    await worker.start();
    const writer = createOperations({ ...writing.client, types: benchTypes });
    const samples: number[] = [];
    for (let i = 0; i < Number(args.samples); i++) {
      const arrived = new Promise<void>((resolve) => (delivered = resolve));
      await writer.submitOperation({ tenantId: "bench", type: "bench", payload: { n: i } });
      const returned = performance.now();
      await arrived;
      samples.push(performance.now() - returned);
    }
    await worker.stop();
    console.log(
      `submit's return → delivery by another process's relay, ${samples.length} samples: ` +
        `p50 ${round(percentile(samples, 50), 2)} ms, p99 ${round(percentile(samples, 99), 2)} ms`,
    );
  } finally {
    await writing.close();
    await receiving.close();
    await dropDatabase(database);
  }
}

async function main(): Promise<void> {
  if (args.latency) return latency();
  const rates: number[] = [];
  for (let i = 0; i < Number(args.runs); i++) {
    rates.push(await run());
    console.log(`run ${i + 1}: ${round(rates.at(-1)!, 0)} deliveries/s`);
  }
  console.log(
    `relay catch-up of ${events} deliveries, batchSize ${batchSize}: median ${round(median(rates), 0)} deliveries/s ` +
      `(${round(Math.min(...rates), 0)}–${round(Math.max(...rates), 0)})`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
