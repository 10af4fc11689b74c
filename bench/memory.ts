// What a worker process's memory is made of: not part of `npm run bench`, a tool for whoever
// brings the RSS down.
//
//   node --expose-gc --import tsx bench/memory.ts [--total 20000] [--snapshot]
//
// Prints process.memoryUsage() at each stage of a process that runs our worker (loaded, client
// connected, service created, seeded elsewhere, during and after a drain) and, with --snapshot,
// writes a heap snapshot in the middle of the drain and prints the biggest constructors by
// retained-by-self size (the .heapsnapshot can be opened in Chrome DevTools for retainers).
import { readFileSync } from "node:fs";
import { writeHeapSnapshot } from "node:v8";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    total: { type: "string", default: "20000" },
    snapshot: { type: "boolean", default: false },
  },
});
const total = Number(args.total);
const server = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const database = "po_bench_memory";
const url = Object.assign(new URL(server), { pathname: `/${database}` }).toString();

const mb = (n: number) => `${Math.round(n / 2 ** 20)}`.padStart(5);
function stage(name: string, collect = true): void {
  if (collect) global.gc?.();
  const m = process.memoryUsage();
  console.log(
    `${name.padEnd(44)} rss ${mb(m.rss)}  heapTotal ${mb(m.heapTotal)}  heapUsed ${mb(m.heapUsed)}  ` +
      `external ${mb(m.external)}  arrayBuffers ${mb(m.arrayBuffers)}  (MB)`,
  );
}

/** Self size by constructor name, from a .heapsnapshot file. */
function summarize(file: string): void {
  const snapshot = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const types = snapshot.snapshot.meta.node_types[0];
  const bySize = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!]!;
    const name =
      type === "object" || type === "native" ? snapshot.strings[snapshot.nodes[i + nameAt]!]! : `(${type})`;
    const entry = bySize.get(name) ?? { size: 0, count: 0 };
    entry.size += snapshot.nodes[i + sizeAt]!;
    entry.count++;
    bySize.set(name, entry);
  }
  console.log(`\nheap snapshot ${file}: biggest by self size`);
  for (const [name, { size, count }] of [...bySize].sort((a, b) => b[1].size - a[1].size).slice(0, 25)) {
    console.log(`  ${mb(size)} MB  ${String(count).padStart(8)} × ${name.slice(0, 90)}`);
  }
}

async function main(): Promise<void> {
  stage("node + tsx, nothing loaded");
  const { withClient } = await import("./common");
  const pg = await import("pg");
  stage("pg loaded");
  const { PrismaClient } = await import("../src/generated/prisma/client");
  const { PrismaPg } = await import("@prisma/adapter-pg");
  stage("Prisma client and adapter loaded");
  const { ours } = await import("./systems");
  stage("the module loaded");
  void pg;
  await withClient(server, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${database}`);
  });
  const bare = new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) });
  await bare.$queryRawUnsafe("SELECT 1");
  stage("a PrismaClient connected (one query)");
  await bare.$disconnect();
  const system = await ours(url);
  await system.setup();
  stage("ours: service created, migrations applied");
  await system.submit(total / 100, 100, "bench");
  stage(`seeded ${total} through submitBatch (this process)`);
  await system.submit(10, 100, "warm");
  await system.drain(1000, "warm");
  stage("after a warm-up drain of 1,000");
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  const reporter = setInterval(
    () => stage(`  during the drain, ${Math.round((performance.now() - started) / 1000)} s`),
    5000,
  );
  let snapshotFile: string | undefined;
  const snapshotTimer = args.snapshot
    ? setTimeout(() => {
        snapshotFile = writeHeapSnapshot();
      }, 1000)
    : undefined;
  await system.drain(total, "bench");
  clearInterval(sampler);
  clearInterval(reporter);
  clearTimeout(snapshotTimer);
  console.log(`peak RSS during the drain: ${mb(peak)} MB`);
  stage("after the drain");
  await system.close();
  await withClient(server, (client) => client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
  if (snapshotFile) summarize(snapshotFile);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
