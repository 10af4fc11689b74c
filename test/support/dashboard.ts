// The dashboard on a real node:http server, and a small client that keeps its cookie and CSRF
// token the way the page does — for the HTTP tests and the browser tests.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createDashboard, type DashboardOptions } from "../../src/dashboard";

export interface DashboardServer {
  /** The dashboard's address, ending with "/" (its base path included). */
  url: string;
  origin: string;
  server: Server;
  close(): Promise<void>;
}

/** Serves `createDashboard(options)` on 127.0.0.1 at a free port. */
export async function startDashboard(options: DashboardOptions): Promise<DashboardServer> {
  const dashboard = createDashboard(options);
  const server = createServer((request, response) => void dashboard.handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const base = (options.basePath ?? "/").replace(/\/?$/, "/");
  return {
    url: `${origin}${base}`,
    origin,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: string;
  json: () => any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** A client of one dashboard: remembers the cookie the page sets and the token the session gives. */
export class DashboardClient {
  cookie: string | undefined;
  token: string | undefined;

  constructor(
    readonly url: string,
    private readonly extraHeaders: Record<string, string> = {},
  ) {}

  async request(path: string, init: RequestInit = {}): Promise<Answer> {
    const headers = new Headers(init.headers);
    for (const [name, value] of Object.entries(this.extraHeaders))
      if (!headers.has(name)) headers.set(name, value);
    if (this.cookie && !headers.has("cookie")) headers.set("cookie", this.cookie);
    const response = await fetch(new URL(path, this.url), { ...init, headers, redirect: "manual" });
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) this.cookie = setCookie.split(";")[0];
    const body = await response.text();
    return { status: response.status, headers: response.headers, body, json: () => JSON.parse(body) };
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return this.request(path, { headers });
  }

  /** Opens the page and the session, as the browser does: the cookie and the CSRF token. */
  async open(): Promise<{ tenants: unknown; readOnly: boolean }> {
    const page = await this.get("");
    if (page.status !== 200) throw new Error(`the page answered ${page.status}: ${page.body}`);
    const session = await this.get("api/session");
    this.token = session.json().csrfToken;
    return session.json();
  }

  /** A POST as the page sends it: JSON, the token in its header, from the dashboard's origin. */
  post(path: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<Answer> {
    return this.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        origin: new URL(this.url).origin,
        ...(this.token ? { "x-dashboard-csrf": this.token } : {}),
        ...headers,
      },
      body: JSON.stringify(body),
    });
  }
}
