// A TCP proxy between one soak node and PostgreSQL, which the orchestrator cuts and restores to
// partition that node from the database while its handlers run.
//
// Two kinds of cut:
// - "blackhole": nothing passes either way, and nothing is closed — what a real partition looks
//   like to both ends. Open connections stop being read (their bytes wait in the kernel, their
//   statements hang, their backends keep whatever locks they hold); new connections are accepted
//   but not forwarded. On restore everything resumes where it stopped, as TCP does when a
//   partition heals within its retry window: a statement sent during the cut arrives late.
// - "reset": every open connection is reset (the client sees ECONNRESET, its backend ends), and
//   every new one is reset as soon as it is accepted, until restore.
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

export type CutKind = "blackhole" | "reset";

interface Pair {
  client: Socket;
  /** Not yet made while the pair waits out a blackhole it was accepted in. */
  upstream: Socket | undefined;
}

export class TcpProxy {
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private state: "open" | CutKind = "open";

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  /** Listens on an ephemeral port of 127.0.0.1; resolves with the port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve(this.port));
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Connections open through the proxy (waiting ones included). */
  get connections(): number {
    return this.pairs.size;
  }

  get cut(): CutKind | undefined {
    return this.state === "open" ? undefined : this.state;
  }

  /** Partitions the connections (see the kinds above). A second cut replaces the first. */
  partition(kind: CutKind): void {
    this.state = kind;
    for (const pair of this.pairs) {
      if (kind === "reset") this.drop(pair, true);
      else {
        pair.client.pause();
        pair.upstream?.pause();
      }
    }
  }

  /** Heals the partition: paused connections resume, waiting ones are forwarded, new ones pass. */
  restore(): void {
    this.state = "open";
    for (const pair of this.pairs) {
      if (pair.upstream) {
        pair.client.resume();
        pair.upstream.resume();
      } else this.forward(pair);
    }
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    for (const pair of this.pairs) this.drop(pair, false);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    if (this.state === "reset") {
      client.on("error", () => undefined);
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on("error", () => this.drop(pair, false));
    client.on("close", () => this.drop(pair, false));
    if (this.state === "blackhole") client.pause();
    else this.forward(pair);
  }

  private forward(pair: Pair): void {
    const upstream = connect(this.target.port, this.target.host);
    upstream.setNoDelay(true);
    pair.upstream = upstream;
    upstream.on("error", () => this.drop(pair, false));
    upstream.on("close", () => this.drop(pair, false));
    this.pipe(pair.client, upstream);
    this.pipe(upstream, pair.client);
    pair.client.resume();
  }

  /** Copies `from` to `to` by hand (not `pipe`, whose flow a pause cannot hold), with backpressure. */
  private pipe(from: Socket, to: Socket): void {
    from.on("data", (chunk) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on("drain", () => {
      if (this.state === "open") from.resume();
    });
  }

  private drop(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    if (reset) {
      pair.client.resetAndDestroy();
      pair.upstream?.resetAndDestroy();
    } else {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
  }
}
