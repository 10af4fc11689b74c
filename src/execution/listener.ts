// LISTEN on a dedicated connection (Prisma cannot hold one), reconnecting whenever it is lost.
// Notifications only shorten waits: whoever listens still polls, so a lost notification costs
// latency, never work.
import { Client, type ClientConfig } from "pg";
import { errorMessage } from "../errors";
import type { Logger } from "../logger";

export interface ListenerOptions {
  config: ClientConfig;
  channels: readonly string[];
  onNotification(channel: string, payload: string): void;
  /** Called after every (re)connection: notifications sent while disconnected were missed. */
  onConnected(): void;
  logger: Logger;
}

const MAX_RECONNECT_DELAY_MS = 5_000;

export class Listener {
  private client: Client | undefined;
  private stopped = true;
  private reconnectDelayMs = 100;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  /** Connections made so far (tests wait on it after killing one). */
  connections = 0;

  constructor(private readonly options: ListenerOptions) {}

  /**
   * Connects; resolves once listening, or once the first attempt has failed (it keeps retrying).
   * Started already: the same connection, not another.
   */
  start(): Promise<void> {
    if (!this.stopped) return this.connecting ?? Promise.resolve();
    this.stopped = false;
    this.connecting = this.connect();
    return this.connecting;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client({ ...this.options.config, application_name: "prisma-operations-listener" });
    client.on("notification", (message) =>
      this.options.onNotification(message.channel, message.payload ?? ""),
    );
    client.on("error", (error) => this.lost(client, error));
    client.on("end", () => this.lost(client, new Error("connection ended")));
    try {
      await client.connect();
      for (const channel of this.options.channels)
        await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
    } catch (error) {
      this.lost(client, error);
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.connections++;
    this.reconnectDelayMs = 100;
    this.options.onConnected();
  }

  private lost(client: Client, error: unknown): void {
    if (this.stopped || (this.client && this.client !== client)) return;
    this.client = undefined;
    client.removeAllListeners();
    client.on("error", () => undefined); // a dead client may still report; nothing left to do
    void client.end().catch(() => undefined);
    this.options.logger.warn("notification connection lost; reconnecting", {
      error: errorMessage(error),
      inMs: this.reconnectDelayMs,
    });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.connecting = this.connect();
    }, this.reconnectDelayMs);
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, MAX_RECONNECT_DELAY_MS);
  }
}
