// Debian's chromium, driven by playwright-core (Playwright's own browser download cannot run
// here): found on the PATH, launched headless with a fresh profile that is removed afterwards.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** The chromium executable (`CHROMIUM_PATH`, else `command -v chromium`), or an error saying how to install it. */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  const found = execFileSync("sh", ["-c", "command -v chromium || true"], { encoding: "utf8" }).trim();
  if (!found) {
    throw new Error(
      "The browser tests drive Debian's chromium, and `command -v chromium` finds none. Install it with " +
        "`apt-get install -y chromium` (as root; .ci/run does this on CI), or set CHROMIUM_PATH to a Chromium binary.",
    );
  }
  return found;
}

export interface Browser {
  context: BrowserContext;
  /** A new tab at `width` × 900, collecting the page's uncaught errors. */
  newPage(width?: number): Promise<{ page: Page; errors: string[] }>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath();
  const userDataDir = await mkdtemp(join(tmpdir(), "po-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async newPage(width = 1280) {
      const page = await context.newPage();
      await page.setViewportSize({ width, height: 900 });
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text());
      });
      return { page, errors };
    },
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}
