// Who may use the dashboard and how a state-changing request proves it came from the dashboard's
// own page. Access: the application's `authorize` hook decides, for every request, and nothing
// is served without its yes. CSRF: the page's session sets a random cookie (HttpOnly, SameSite
// Strict) and hands the page a token bound to it (an HMAC with a secret only the server has); a
// POST must carry that token in a custom header, as JSON, and come from the same origin.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { DashboardRequest } from "./http";

/** What `authorize` grants: the tenants the operator may see (`"*"`: all), and whether only to look. */
export interface DashboardGrant {
  tenants: readonly string[] | "*";
  /** No actions (cancel, retry, redeliver) for this operator. Default false. */
  readOnly?: boolean;
}

/**
 * The answer of an `authorize` hook: a grant, or `null`/`undefined` (not signed in: 401) or
 * `false` (signed in, not allowed: 403).
 */
export type AuthorizeResult = DashboardGrant | false | null | undefined;

export const CSRF_COOKIE = "prisma_operations_dashboard";
export const CSRF_HEADER = "x-dashboard-csrf";

/** A refusal, as the HTTP layer answers it. */
export class Refusal extends Error {
  constructor(
    readonly status: 401 | 403,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "Refusal";
  }
}

/** Checks what an `authorize` hook answered; throws a Refusal for anything but a usable grant. */
export function checkGrant(result: unknown): DashboardGrant {
  if (result === null || result === undefined) {
    throw new Refusal(401, "unauthenticated", "sign in to use the operations dashboard");
  }
  if (result === false) throw new Refusal(403, "forbidden", "you may not use the operations dashboard");
  const grant = result as DashboardGrant;
  const tenants = grant?.tenants;
  const valid =
    tenants === "*" ||
    (Array.isArray(tenants) &&
      tenants.length > 0 &&
      tenants.every((t) => typeof t === "string" && t.length > 0));
  if (!valid) throw new Refusal(403, "forbidden", "authorize granted no tenants");
  return { tenants: tenants === "*" ? "*" : [...tenants], readOnly: grant.readOnly === true };
}

function cookies(header: string | undefined): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) found.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return found;
}

/** Issues and checks the CSRF cookie and its token. */
export class CsrfGuard {
  private readonly secret: Buffer;

  constructor(
    secret: string | undefined,
    private readonly trustedOrigins: readonly string[],
  ) {
    this.secret = secret ? Buffer.from(secret, "utf8") : randomBytes(32);
  }

  /** The session cookie's value in the request, if it has a well-formed one. */
  private cookieOf(request: DashboardRequest): string | undefined {
    const value = cookies(request.header("cookie")).get(CSRF_COOKIE);
    return value && /^[A-Za-z0-9_-]{32,64}$/.test(value) ? value : undefined;
  }

  private tokenFor(cookie: string): string {
    return createHmac("sha256", this.secret).update(cookie).digest("base64url");
  }

  /**
   * The token the page sends back, for the request's cookie — or a new cookie (to set with the
   * returned `setCookie`) when it has none.
   */
  session(request: DashboardRequest): { token: string; setCookie?: string } {
    const existing = this.cookieOf(request);
    if (existing) return { token: this.tokenFor(existing) };
    const cookie = randomBytes(24).toString("base64url");
    const attributes = [
      `${CSRF_COOKIE}=${cookie}`,
      `Path=${request.base}`,
      "HttpOnly",
      "SameSite=Strict",
      ...(request.secure ? ["Secure"] : []),
    ];
    return { token: this.tokenFor(cookie), setCookie: attributes.join("; ") };
  }

  /** Refuses a state-changing request that is not JSON, lacks the token, or comes from another origin. */
  check(request: DashboardRequest): void {
    const origin = request.header("origin");
    if (origin !== undefined && origin !== "null") {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host !== request.header("host") && !this.trustedOrigins.includes(origin)) {
        throw new Refusal(403, "cross_origin", `requests from ${origin} are not accepted`);
      }
    } else if (origin === "null" || (request.header("sec-fetch-site") ?? "same-origin") !== "same-origin") {
      throw new Refusal(403, "cross_origin", "cross-site requests are not accepted");
    }
    if (!(request.header("content-type") ?? "").toLowerCase().startsWith("application/json")) {
      throw new Refusal(403, "csrf", "state-changing requests must be JSON");
    }
    const cookie = this.cookieOf(request);
    // Compared as bytes: a header with non-ASCII characters can match the token's length in
    // characters and not in bytes, and timingSafeEqual throws on buffers of unequal length.
    const sent = Buffer.from(request.header(CSRF_HEADER) ?? "");
    const expected = Buffer.from(cookie ? this.tokenFor(cookie) : "");
    const ok = cookie !== undefined && sent.length === expected.length && timingSafeEqual(sent, expected);
    if (!ok) throw new Refusal(403, "csrf", "missing or wrong CSRF token: reload the dashboard");
  }
}
