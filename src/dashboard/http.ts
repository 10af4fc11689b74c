// The dashboard speaks one small request/response shape; these adapters translate node:http (and
// Express/NestJS, which build on it) and the Fetch API (Next.js route handlers) to and from it.
import type { IncomingMessage, ServerResponse } from "node:http";

/** A request as the dashboard sees it, whatever server received it. */
export interface DashboardRequest {
  method: string;
  /** The path below the dashboard's base, starting with "/" (the base itself is "/"). */
  path: string;
  query: URLSearchParams;
  /** The base the browser sees, ending with "/": where the page and its assets are. */
  base: string;
  /** Whether the browser reached it over HTTPS (so cookies get `Secure`). */
  secure: boolean;
  /** A header's value (names in lower case). */
  header(name: string): string | undefined;
  /** The body as text (at most `MAX_BODY_BYTES`). */
  body(): Promise<string>;
}

export interface DashboardResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export const MAX_BODY_BYTES = 64 * 1024;

/** The body was over MAX_BODY_BYTES. */
export class BodyTooLargeError extends Error {
  constructor() {
    super(`request body over ${MAX_BODY_BYTES} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/** "/ops" → "/ops/"; "" → "/". */
export function normalizeBase(base: string): string {
  const withLeading = base.startsWith("/") ? base : `/${base}`;
  return withLeading.endsWith("/") ? withLeading : `${withLeading}/`;
}

/** The path below `base`, or undefined when `pathname` is not under it. */
export function below(pathname: string, base: string): string | undefined {
  if (pathname === base.slice(0, -1) || pathname === base) return "/";
  return pathname.startsWith(base) ? `/${pathname.slice(base.length)}` : undefined;
}

/** Express (and NestJS on Express) set these on a request handled under a mount path. */
interface MountedRequest extends IncomingMessage {
  baseUrl?: string;
  body?: unknown;
}

async function readStream(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLargeError();
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A node:http request as a DashboardRequest. Under Express's `app.use(path, …)` the mount path
 * is the base; otherwise `basePath` is, and a request outside it is undefined.
 */
export function fromNode(request: IncomingMessage, basePath: string): DashboardRequest | undefined {
  const mounted = request as MountedRequest;
  const url = new URL(request.url ?? "/", "http://dashboard.invalid");
  let base: string;
  let path: string | undefined;
  if (typeof mounted.baseUrl === "string") {
    base = normalizeBase(mounted.baseUrl);
    path = url.pathname;
  } else {
    base = normalizeBase(basePath);
    path = below(url.pathname, base);
  }
  if (path === undefined) return undefined;
  const header = (name: string) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  };
  return {
    method: (request.method ?? "GET").toUpperCase(),
    path,
    query: url.searchParams,
    base,
    secure: Boolean((request.socket as { encrypted?: boolean } | undefined)?.encrypted),
    header,
    async body() {
      // A body parser (express.json()) may have read the stream already.
      if (mounted.body !== undefined) {
        if (typeof mounted.body === "string") return mounted.body;
        if (Buffer.isBuffer(mounted.body)) return mounted.body.toString("utf8");
        return JSON.stringify(mounted.body);
      }
      return readStream(request);
    },
  };
}

export function toNode(response: DashboardResponse, target: ServerResponse): void {
  target.writeHead(response.status, response.headers);
  target.end(response.body);
}

/** A Fetch API request (Next.js route handlers) as a DashboardRequest; undefined outside `basePath`. */
export function fromFetch(request: Request, basePath: string): DashboardRequest | undefined {
  const url = new URL(request.url);
  const base = normalizeBase(basePath);
  const path = below(url.pathname, base);
  if (path === undefined) return undefined;
  return {
    method: request.method.toUpperCase(),
    path,
    query: url.searchParams,
    base,
    secure: url.protocol === "https:",
    header: (name) => request.headers.get(name) ?? undefined,
    async body() {
      const text = await request.text();
      if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new BodyTooLargeError();
      return text;
    },
  };
}

export function toFetch(response: DashboardResponse): Response {
  return new Response(response.status === 304 ? null : response.body, {
    status: response.status,
    headers: response.headers,
  });
}
