// The soak partitions a node from PostgreSQL with this proxy: it must pass traffic while open, and
// each kind of cut must do what the soak counts on until it is restored.
import { Client } from "pg";
import { TcpProxy } from "../../soak/proxy";
import { createTestDatabase, type TestDatabase } from "../support/db";

let db: TestDatabase;
let proxy: TcpProxy;
let proxied: string;
const clients: Client[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = new TcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const port = await proxy.listen();
  target.hostname = "127.0.0.1";
  target.port = String(port);
  proxied = target.toString();
});
afterEach(async () => {
  proxy.restore();
  await Promise.all(clients.splice(0).map((client) => client.end().catch(() => undefined)));
});
afterAll(async () => {
  await proxy.close();
  await db.close();
});

function client(applicationName: string): Client {
  const made = new Client({ connectionString: proxied, application_name: applicationName });
  made.on("error", () => undefined); // a cut is expected to break it
  clients.push(made);
  return made;
}

async function backends(applicationName: string): Promise<number> {
  const { rows } = await db.pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
    [applicationName],
  );
  return rows[0].n;
}

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe("the soak's TCP proxy", () => {
  it("passes statements while open; a reset cut ends open connections and refuses new ones until restored", async () => {
    const open = client("proxy-reset");
    await open.connect();
    expect((await open.query(`SELECT 41 + 1 AS n`)).rows[0].n).toBe(42);
    expect(proxy.connections).toBe(1);

    proxy.partition("reset");
    await expect(open.query(`SELECT 1`)).rejects.toThrow();
    await until(async () => (await backends("proxy-reset")) === 0); // its backend ended too
    await expect(client("proxy-reset-new").connect()).rejects.toThrow();

    proxy.restore();
    const after = client("proxy-reset-after");
    await after.connect();
    expect((await after.query(`SELECT 1 AS n`)).rows[0].n).toBe(1);
  });

  it("a blackhole cut holds statements and new connections without closing anything, and lets them through on restore", async () => {
    await db.pool.query(`CREATE TABLE proxy_held (n int)`);
    const open = client("proxy-blackhole");
    await open.connect();
    proxy.partition("blackhole");
    let inserted = false;
    const insert = open.query(`INSERT INTO proxy_held VALUES (1)`).then(() => (inserted = true));
    let connected = false;
    const late = client("proxy-blackhole-new");
    const connecting = late.connect().then(() => (connected = true));

    // Nothing may pass however long the cut lasts; a while is as much as a test can show.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM proxy_held`)).rows[0].n).toBe(0);
    expect({ inserted, connected }).toEqual({ inserted: false, connected: false });
    expect(await backends("proxy-blackhole")).toBe(1); // held, not closed
    expect(await backends("proxy-blackhole-new")).toBe(0);

    proxy.restore();
    await Promise.all([insert, connecting]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM proxy_held`)).rows[0].n).toBe(1);
    expect((await late.query(`SELECT 1 AS n`)).rows[0].n).toBe(1);
  });
});
