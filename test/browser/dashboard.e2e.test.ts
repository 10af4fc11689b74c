// The dashboard in a real browser (Debian's chromium through playwright-core), on a real server
// and database: the numbers it shows are the database's, a batch's page shows its children and
// why they wait, its buttons change the database, a stranger is refused, hostile payloads stay
// text, and every main page renders at a desktop's and a phone's width (the screenshots of the
// README: DASHBOARD_SCREENSHOTS=1 writes them to docs/screenshots).
import { mkdirSync, mkdtempSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { silentLogger } from "../../src";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { startDashboard, type DashboardServer } from "../support/dashboard";
import { waitFor } from "../support/fixtures";
import { launchBrowser, type Browser } from "./chromium";
import { HOSTILE, seed, seedService, type SeedService, type Seeded } from "./seed";

let db: TestDatabase;
let ops: SeedService;
let seeded: Seeded;
let server: DashboardServer;
let browser: Browser;

const OPERATOR = { "x-operator": "alice" };

beforeAll(async () => {
  browser = await launchBrowser(); // first: without chromium, say so before anything else
  db = await createTestDatabase();
  ops = seedService(db.prisma);
  seeded = await seed(ops, db.prisma, db.pool);
  server = await startDashboard({
    operations: ops,
    basePath: "/ops",
    pollIntervalMs: 500,
    logger: silentLogger,
    // The operator "signs in" with a header; a browser without it is nobody.
    authorize: (request) =>
      (request as IncomingMessage).headers["x-operator"] === "alice" ? { tenants: "*" } : null,
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await db?.close();
});

/** Opens a view of the dashboard as the signed-in operator, once its data has loaded. */
async function open(hash: string, width = 1280): Promise<{ page: Page; errors: string[] }> {
  const opened = await browser.newPage(width);
  await opened.page.setExtraHTTPHeaders(OPERATOR);
  await opened.page.goto(`${server.url}${hash}`);
  await loaded(opened.page);
  return opened;
}

/**
 * The page's globals, as far as these tests touch them (this project's TypeScript has no DOM
 * types; functions passed to `page.evaluate` run in the page, where these exist).
 */
interface PageGlobals {
  document: {
    querySelector(selector: string): { getAttribute(name: string): string | null } | null;
    documentElement: { scrollWidth: number };
    fonts: { ready: Promise<unknown> };
  };
  location: { hash: string };
  innerWidth: number;
  performance: { getEntriesByType(type: string): unknown[] };
  fetch(url: string, init: object): Promise<{ status: number; json(): Promise<unknown> }>;
  __pwned?: number;
}
/** Resolves once the current view has shown data (it refreshes itself afterwards). */
async function loaded(page: Page): Promise<void> {
  await page.waitForFunction(() => {
    const { document } = globalThis as unknown as PageGlobals;
    return Number(document.querySelector("main")?.getAttribute("data-loaded") ?? 0) > 0;
  });
}

async function sql<T = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
  return (await db.pool.query(text, values)).rows as T[];
}

async function statusOf(table: "operations" | "operation_batches", id: string): Promise<string> {
  return (await sql<{ status: string }>(`SELECT status::text FROM ${table} WHERE id = $1`, [id]))[0]!.status;
}

describe("the dashboard in a browser", () => {
  it("shows the database's numbers on the overview", async () => {
    const { page, errors } = await open("#/");
    const shown = async () => {
      const stat = (label: string) => page.locator(`[data-stat="${label}"] .value`).innerText();
      const queues = await page.locator("#queues tbody tr").evaluateAll((rows) =>
        rows.map((row) => {
          const cells = [...row.querySelectorAll("td")].map((cell) => cell.textContent ?? "");
          return [
            row.getAttribute("data-type"),
            row.getAttribute("data-tenant"),
            cells[2],
            cells[3],
            cells[4],
          ].join(" ");
        }),
      );
      return {
        claimable: await stat("Claimable"),
        scheduled: await stat("Scheduled"),
        running: await stat("Running"),
        completed: await stat("Completed · 1 h"),
        failed: await stat("Failed · 1 h"),
        dead: await stat("Dead"),
        queues: queues.sort(),
      };
    };
    const counted = async () => {
      const [totals] = await sql<Record<string, string>>(`
        SELECT count(*) FILTER (WHERE status = 'pending' AND run_at <= now())::text AS claimable,
               count(*) FILTER (WHERE status = 'pending' AND run_at > now())::text AS scheduled,
               count(*) FILTER (WHERE status = 'processing')::text AS running,
               count(*) FILTER (WHERE status = 'completed' AND finished_at >= now() - interval '1 hour')::text AS completed,
               count(*) FILTER (WHERE status = 'failed' AND finished_at >= now() - interval '1 hour')::text AS failed,
               (SELECT count(*) FROM operation_deliveries WHERE dead_at IS NOT NULL)::text AS dead
        FROM operations`);
      const queues = await sql<{ q: string }>(`
        SELECT type || ' ' || tenant_id || ' ' ||
               count(*) FILTER (WHERE status = 'pending' AND run_at <= now()) || ' ' ||
               count(*) FILTER (WHERE status = 'pending' AND run_at > now()) || ' ' ||
               count(*) FILTER (WHERE status = 'processing') AS q
        FROM operations GROUP BY type, tenant_id`);
      return { ...totals, queues: queues.map((row) => row.q).sort() };
    };
    // Backoffs run out while the test runs: compare what one refresh showed with one count.
    let last: unknown;
    await waitFor("the overview to show what the tables hold", async () => {
      const [fromPage, fromDatabase] = [await shown(), await counted()];
      last = { fromPage, fromDatabase };
      return JSON.stringify(fromPage) === JSON.stringify(fromDatabase);
    }).catch((error) => {
      throw new Error(`${(error as Error).message}: ${JSON.stringify(last)}`);
    });
    expect(await page.locator(`#recent-batches [data-batch="${seeded.inFlight}"]`).innerText()).toContain(
      seeded.inFlight.slice(0, 8),
    );
    expect(await page.locator("#attention").innerText()).toContain(
      'no live worker handles "invoices.render" (is a worker for this type running?)',
    );
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a batch's children, each with why it waits", async () => {
    const { page, errors } = await open(`#/batches/${seeded.inFlight}`);
    const rows = page.locator("#children tbody tr");
    await waitFor("the 30 children", async () => (await rows.count()) === 30);
    const reason = async (id: string) => {
      const row = page.locator(`#children tr[data-operation="${id}"]`);
      return {
        code: await row.locator("[data-reason]").getAttribute("data-reason"),
        text: await row.locator("td.why").innerText(),
      };
    };
    for (const id of seeded.children.running) {
      expect(await reason(id)).toEqual({
        code: "running",
        text: expect.stringMatching(/^Held by worker ingest-worker-1 until .* \(attempt 1 of 5\)\.$/),
      });
    }
    for (const id of seeded.children.backingOff) {
      expect(await reason(id)).toEqual({
        code: "backing_off",
        text: expect.stringMatching(/^Backing off after attempt 1 of 5 failed, until /),
      });
    }
    for (const id of seeded.children.due) {
      expect((await reason(id)).text).toMatch(/claimed/);
    }
    const failed = page.locator(`#children tr[data-operation="${seeded.children.failed[0]}"] td.why`);
    expect(await failed.innerText()).toBe("NonRetryableError: document doc-18-2 is encrypted");
    expect(await page.locator(".reason-box").innerText()).toMatch(/3 running · 6 due/);
    expect(await page.locator("#events").innerText()).toContain("batch.submitted");

    // One click on a child: its own page, with its lease.
    await page.locator(`#children tr[data-operation="${seeded.children.running[0]}"] a`).click();
    await page.waitForFunction(() =>
      (globalThis as unknown as PageGlobals).location.hash.startsWith("#/operations/"),
    );
    await loaded(page);
    await waitFor("the operation's reason", async () =>
      (await page.locator(".reason-box").innerText()).includes("Held by worker ingest-worker-1"),
    );
    expect(await page.locator(".facts").innerText()).toContain("ingest-worker-1");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("renders every main page at a desktop's and a phone's width, without sideways scrolling", async () => {
    const target = process.env.DASHBOARD_SCREENSHOTS
      ? join(__dirname, "../../docs/screenshots")
      : mkdtempSync(join(tmpdir(), "po-screenshots-"));
    mkdirSync(target, { recursive: true });
    const pages: [string, string][] = [
      ["overview", "#/"],
      ["batch", `#/batches/${seeded.inFlight}`],
      ["batches", "#/batches"],
      ["operation", `#/operations/${seeded.hostile}`],
      ["dead", "#/dead"],
    ];
    for (const [width, suffix] of [
      [1280, "desktop"],
      [390, "phone"],
    ] as const) {
      for (const [name, hash] of pages) {
        if (suffix === "phone" && name === "batches") continue;
        const { page, errors } = await open(hash, width);
        const overflow = await page.evaluate(async () => {
          const window = globalThis as unknown as PageGlobals;
          await window.document.fonts.ready;
          return window.document.documentElement.scrollWidth - window.innerWidth;
        });
        expect({ page: name, width, overflow }).toEqual({ page: name, width, overflow: 0 });
        await page.screenshot({ path: join(target, `${name}-${suffix}.png`), fullPage: true });
        expect(errors).toEqual([]);
        await page.close();
      }
    }
  });

  it("refuses a browser that authorize does not let in", async () => {
    const { page } = await browser.newPage();
    const response = await page.goto(server.url);
    expect(response?.status()).toBe(401);
    expect(await page.locator("h1").innerText()).toBe("Sign in required");
    // The same browser asking for data or the script (its refusal page itself may fetch nothing).
    expect((await page.request.get(`${server.url}api/overview`)).status()).toBe(401);
    expect((await page.request.get(`${server.url}dashboard.js`)).status()).toBe(401);
    await page.close();
  });

  it("shows a payload and an error message holding <script> as text", async () => {
    const { page, errors } = await open(`#/operations/${seeded.hostile}`);
    expect(await page.locator("#payload").textContent()).toContain(JSON.stringify(HOSTILE).slice(1, -1));
    expect(await page.locator(".reason-box").innerText()).toContain(`could not render ${HOSTILE}`);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
    expect(await page.locator("main script, main img").count()).toBe(0);
    // The lists show the same error as text too.
    await page.goto(`${server.url}#/operations`);
    await loaded(page);
    expect(await page.locator(`tr[data-operation="${seeded.hostile}"]`).innerText()).toContain(HOSTILE);
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).__pwned)).toBeUndefined();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("cancels and retries from the page, and the database follows", async () => {
    const { page, errors } = await open(`#/batches/${seeded.failed}`);
    const retry = page.locator('button[data-action="Retry failed and cancelled"]');
    await retry.click();
    await retry.click(); // the second click confirms
    await waitFor(
      "the failed batch to run again",
      async () => (await statusOf("operation_batches", seeded.failed)) === "processing",
    );
    expect(
      await sql(
        `SELECT status::text, count(*)::int FROM operations WHERE batch_id = $1 GROUP BY 1 ORDER BY 1`,
        [seeded.failed],
      ),
    ).toEqual([
      { status: "completed", count: 4 },
      { status: "pending", count: 2 },
    ]);
    await waitFor(
      "the page to show it running",
      async () => (await page.locator("h1 .pill").innerText()) === "running",
    );

    const cancel = page.locator('button[data-action="Cancel batch"]');
    await cancel.click();
    await cancel.click();
    await waitFor(
      "the batch to be cancelled",
      async () => (await statusOf("operation_batches", seeded.failed)) === "cancelled",
    );
    await waitFor(
      "the page to say so",
      async () => (await page.locator("h1 .pill").innerText()) === "cancelled",
    );
    expect(await page.locator(".toast").first().innerText()).toMatch(/Batch .* is (processing|cancelled)/);

    // An operation: retry, then cancel.
    await page.goto(`${server.url}#/operations/${seeded.hostile}`);
    await loaded(page);
    await page.locator('button[data-action="Retry"]').click();
    await page.locator('button[data-action="Retry"]').click();
    await waitFor(
      "the operation to be pending",
      async () => (await statusOf("operations", seeded.hostile)) === "pending",
    );
    await waitFor("the cancel button to be enabled", async () =>
      page.locator('button[data-action="Cancel"]').isEnabled(),
    );
    await page.locator('button[data-action="Cancel"]').click();
    await page.locator('button[data-action="Cancel"]').click();
    await waitFor(
      "the operation to be cancelled",
      async () => (await statusOf("operations", seeded.hostile)) === "cancelled",
    );
    // A refused action shows the service's typed error, and changes nothing.
    await waitFor(
      "the page to show it cancelled",
      async () => (await page.locator("h1 .pill").innerText()) === "cancelled",
    );
    const answer = await page.evaluate(async (id) => {
      const response = await (globalThis as unknown as PageGlobals).fetch(`api/operations/${id}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      return { status: response.status, body: await response.json() };
    }, seeded.hostile);
    expect(answer).toEqual({
      status: 403,
      body: { error: "csrf", message: "missing or wrong CSRF token: reload the dashboard" },
    });
    expect(errors.filter((error) => !error.includes("403"))).toEqual([]);
    await page.close();
  });

  it("redelivers a dead delivery from the page", async () => {
    const { page, errors } = await open("#/dead");
    const rows = page.locator("tbody tr[data-event]");
    expect(await rows.count()).toBe(2);
    const eventId = await rows.first().getAttribute("data-event");
    await rows.first().locator("input[type=checkbox]").check();
    await page.locator("button", { hasText: "Redeliver selected (1)" }).click();
    await waitFor("the delivery to be due again", async () => {
      const [row] = await sql<{ dead: boolean }>(
        `SELECT dead_at IS NOT NULL AS dead FROM operation_deliveries WHERE event_id = $1 AND subscriber = 'billing-webhook'`,
        [eventId],
      );
      return row?.dead === false;
    });
    await waitFor("the list to drop it", async () => (await rows.count()) === 1);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("refreshes itself: a change in the database shows without a reload", async () => {
    const { page, errors } = await open(`#/batches/${seeded.stuck}`);
    expect(await page.locator("h1 .pill").innerText()).toBe("pending");
    await ops.cancelBatch("globex", seeded.stuck);
    await waitFor(
      "the page to show the cancel",
      async () => (await page.locator("h1 .pill").innerText()) === "cancelled",
    );
    expect(
      await page.evaluate(
        () => (globalThis as unknown as PageGlobals).performance.getEntriesByType("navigation").length,
      ),
    ).toBe(1);
    expect(errors).toEqual([]);
    await page.close();
  });
});
