// prisma-operations/dashboard: the operations dashboard as a request handler. It serves one page
// (static HTML, CSS and vanilla JavaScript shipped in the package: nothing to build) and the JSON
// API that page polls, under any path of an existing server:
//
//   node:http   http.createServer((req, res) => dashboard.handle(req, res))   (with basePath)
//   Express     app.use("/ops", dashboard.handle)                              (the mount is the base)
//   NestJS      app.use("/ops", dashboard.handle) in main.ts
//   Next.js     app/ops/[[...path]]/route.ts: export const GET = dashboard.fetch, POST = dashboard.fetch
//               (with basePath "/ops")
//
// Nothing is served unless `authorize` says yes; what it grants limits every read to the
// operator's tenants (in SQL) and may make the operator read-only.
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { OperationsError } from "../errors";
import { toHttpError } from "../integrations/http";
import { consoleLogger, type Logger } from "../logger";
import type { OperationsService } from "../service";
import { act, read, type ApiContext } from "./api";
import { DASHBOARD_SCRIPT } from "./assets/script";
import { DASHBOARD_STYLES } from "./assets/styles";
import { pageHtml } from "./assets/page";
import {
  BodyTooLargeError,
  fromFetch,
  fromNode,
  toFetch,
  toNode,
  type DashboardRequest,
  type DashboardResponse,
} from "./http";
import { checkGrant, CsrfGuard, Refusal, type AuthorizeResult, type DashboardGrant } from "./security";

export type { AuthorizeResult, DashboardGrant } from "./security";
export { CSRF_COOKIE, CSRF_HEADER } from "./security";

export interface DashboardOptions {
  /** The service whose queues the dashboard shows; its actions run through it. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  operations: OperationsService<any, any>;
  /**
   * Decides every request (the page, its assets and the API): return the tenants the operator may
   * see (`{ tenants: ["bank-42"] }`, or `"*"` for all) and optionally `readOnly: true`; return
   * `null`/`undefined` when nobody is signed in (401) or `false` to refuse (403). Receives the
   * request as your server has it (node's IncomingMessage, Express's Request, or a Fetch Request).
   * Required: without it every request is refused.
   */
  authorize: (request: IncomingMessage | Request) => AuthorizeResult | Promise<AuthorizeResult>;
  /**
   * Where the dashboard is, as the browser sees it (e.g. "/ops"), for node:http and Next.js.
   * Under Express (or NestJS) the mount path is used instead. Default "/".
   */
  basePath?: string;
  /** No actions for anyone (cancel, retry, redeliver): a dashboard to look only. Default false. */
  readOnly?: boolean;
  /**
   * The secret the CSRF tokens are bound with. Default: random per process — set one when
   * several processes serve the dashboard behind one address.
   */
  csrfSecret?: string;
  /** Origins (besides the dashboard's own host) allowed to send actions, e.g. behind a proxy that rewrites Host. */
  trustedOrigins?: string[];
  /** How often the page refreshes itself. Default 3,000 ms. */
  pollIntervalMs?: number;
  /** How long a due row may wait before the page calls it unclaimed. Default 30 s. */
  stallAfterMs?: number;
  /** Where unexpected errors are logged. Default: the console. */
  logger?: Logger;
}

/** The dashboard's request handlers. */
export interface Dashboard {
  /**
   * For node:http, Express and NestJS: serves the request, or — as Express middleware, for a
   * request outside `basePath` — calls `next()` (404 without it).
   */
  handle(request: IncomingMessage, response: ServerResponse, next?: (error?: unknown) => void): Promise<void>;
  /** For a Next.js route handler (or any Fetch API server). */
  fetch(request: Request): Promise<Response>;
}

const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const ASSETS: Record<string, { type: string; body: string; etag: string }> = Object.fromEntries(
  [
    ["/dashboard.js", "text/javascript; charset=utf-8", DASHBOARD_SCRIPT],
    ["/dashboard.css", "text/css; charset=utf-8", DASHBOARD_STYLES],
  ].map(([path, type, body]) => [
    path!,
    {
      type: type!,
      body: body!,
      etag: `"${createHash("sha256").update(body!).digest("base64url").slice(0, 22)}"`,
    },
  ]),
);

function json(status: number, body: unknown, headers: Record<string, string> = {}): DashboardResponse {
  return {
    status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...headers,
    },
    body: JSON.stringify(body),
  };
}

/** Creates the dashboard's handlers for `options.operations`. */
export function createDashboard(options: DashboardOptions): Dashboard {
  const basePath = options.basePath ?? "/";
  const logger = options.logger ?? consoleLogger;
  const csrf = new CsrfGuard(options.csrfSecret, options.trustedOrigins ?? []);
  const pollIntervalMs = options.pollIntervalMs ?? 3_000;
  if (typeof options.authorize !== "function") {
    logger.warn("createDashboard: no authorize hook was given, so every request is refused");
  }

  async function authorize(raw: IncomingMessage | Request): Promise<DashboardGrant> {
    if (typeof options.authorize !== "function") {
      throw new Refusal(403, "forbidden", "the dashboard has no authorize hook: every request is refused");
    }
    return checkGrant(await options.authorize(raw));
  }

  async function api(request: DashboardRequest, grant: DashboardGrant): Promise<DashboardResponse> {
    const route = request.path.slice("/api/".length).split("/");
    const readOnly = options.readOnly === true || grant.readOnly === true;
    const session = csrf.session(request);
    const ctx: ApiContext = {
      operations: options.operations,
      inspector: options.operations.inspect(grant.tenants, { stallAfterMs: options.stallAfterMs }),
      grant,
      readOnly,
      csrfToken: session.token,
      pollIntervalMs,
    };
    if (request.method === "GET") {
      const body = await read(ctx, route, request.query);
      if (body === undefined) return json(404, { error: "not_found", message: "no such API route" });
      return json(200, body, session.setCookie ? { "set-cookie": session.setCookie } : {});
    }
    if (request.method !== "POST") {
      return json(
        405,
        { error: "method_not_allowed", message: `${request.method} is not allowed` },
        { allow: "GET, POST" },
      );
    }
    csrf.check(request);
    if (readOnly) throw new Refusal(403, "read_only", "this dashboard is read-only for you");
    const body = await act(ctx, route, request);
    if (body === undefined) return json(404, { error: "not_found", message: "no such action" });
    return json(200, body);
  }

  function page(request: DashboardRequest): DashboardResponse {
    const session = csrf.session(request);
    return {
      status: 200,
      headers: {
        ...SECURITY_HEADERS,
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "content-security-policy": PAGE_POLICY,
        ...(session.setCookie ? { "set-cookie": session.setCookie } : {}),
      },
      body: pageHtml(request.base),
    };
  }

  function asset(request: DashboardRequest): DashboardResponse | undefined {
    const found = ASSETS[request.path];
    if (!found) return undefined;
    const headers = {
      ...SECURITY_HEADERS,
      "content-type": found.type,
      "cache-control": "no-cache",
      etag: found.etag,
    };
    if (request.header("if-none-match") === found.etag) return { status: 304, headers, body: "" };
    return { status: 200, headers, body: found.body };
  }

  async function respond(
    request: DashboardRequest,
    raw: IncomingMessage | Request,
  ): Promise<DashboardResponse> {
    const isApi = request.path.startsWith("/api/");
    try {
      const grant = await authorize(raw);
      if (isApi) return await api(request, grant);
      if (request.method !== "GET" && request.method !== "HEAD") {
        return json(405, { error: "method_not_allowed", message: `${request.method} is not allowed` });
      }
      if (request.path === "/") return page(request);
      return asset(request) ?? json(404, { error: "not_found", message: "not found" });
    } catch (error) {
      if (error instanceof Refusal) {
        return isApi || request.path !== "/"
          ? json(error.status, { error: error.code, message: error.message })
          : refusalPage(error);
      }
      if (error instanceof OperationsError) {
        const mapped = toHttpError(error);
        return json(mapped.status, mapped.body);
      }
      if (error instanceof BodyTooLargeError)
        return json(413, { error: "body_too_large", message: error.message });
      logger.error("dashboard request failed", {
        path: request.path,
        error: error instanceof Error ? error.message : String(error),
      });
      return json(500, {
        error: "internal_error",
        message: "the dashboard could not answer; see the server's log",
      });
    }
  }

  return {
    handle: async (request, response, next) => {
      const dashboardRequest = fromNode(request, basePath);
      if (!dashboardRequest) {
        if (next) return next();
        return toNode(json(404, { error: "not_found", message: "not found" }), response);
      }
      toNode(await respond(dashboardRequest, request), response);
    },
    fetch: async (request) => {
      const dashboardRequest = fromFetch(request, basePath);
      if (!dashboardRequest) return toFetch(json(404, { error: "not_found", message: "not found" }));
      return toFetch(await respond(dashboardRequest, request));
    },
  };
}

/** The page a browser gets when refused: a sentence, no data. */
function refusalPage(refusal: Refusal): DashboardResponse {
  const title = refusal.status === 401 ? "Sign in required" : "Not allowed";
  return {
    status: refusal.status,
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
    },
    body:
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>` +
      `<style>body{font:16px system-ui,sans-serif;margin:15vh auto;max-width:32rem;color:#1f2937}</style></head>` +
      `<body><h1>${title}</h1><p>The operations dashboard refused this request (${refusal.status}).</p></body></html>`,
  };
}
