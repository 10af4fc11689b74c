// `npm start -- --dashboard`: the demo runs as it always does (its summary and `DONE {json}`),
// then prints `DASHBOARD <url>` and keeps the dashboard open until SIGINT; that URL opens the
// overview, where the demo's batch is listed — one click from its page.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "../support/db";
import { waitFor } from "../support/fixtures";
import { launchBrowser, type Browser } from "./chromium";

let db: TestDatabase;
let browser: Browser;
let demo: ChildProcess | undefined;

beforeAll(async () => {
  browser = await launchBrowser();
  db = await createTestDatabase();
});

afterAll(async () => {
  if (demo && demo.exitCode === null) demo.kill("SIGKILL");
  await browser?.close();
  await db?.close();
});

it("keeps the dashboard open after the demo, showing the demo's batch, until SIGINT", async () => {
  let output = "";
  demo = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(__dirname, "../../examples/demo/main.ts"),
      "--dashboard",
      "--documents",
      "60",
      "--workers",
      "2",
    ],
    { env: { ...process.env, DATABASE_URL: db.url }, stdio: ["ignore", "pipe", "pipe"] },
  );
  demo.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  demo.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => demo!.once("exit", (code) => resolve(code)));

  await waitFor("the DASHBOARD line", () => /^DASHBOARD /m.test(output), 50_000, 100).catch((error) => {
    throw new Error(`${(error as Error).message}\n${output}`);
  });
  const done = JSON.parse(/^DONE (.*)$/m.exec(output)![1]!) as { batchId: string; status: string };
  expect(done.status).toBe("completed");
  const url = /^DASHBOARD (http:\/\/127\.0\.0\.1:\d+\/\S*)$/m.exec(output)![1]!;
  expect(output.indexOf("DONE ")).toBeLessThan(output.indexOf("DASHBOARD "));

  const { page, errors } = await browser.newPage();
  await page.goto(url);
  const row = page.locator(`#recent-batches [data-batch="${done.batchId}"]`);
  await row.waitFor();
  expect(await row.innerText()).toContain(done.batchId.slice(0, 8));
  await row.locator("a").first().click();
  await page.locator(".reason-box").waitFor();
  expect(await page.locator("h1").innerText()).toContain("completed");
  expect(errors).toEqual([]);
  await page.close();

  demo.kill("SIGINT");
  expect(await exited).toBe(0);
  expect(output).toContain("SIGINT: closing the dashboard");
});
