import { ops } from "./quickstart.js";

declare function index(
  documents: { id: string; text: string }[],
  options: { signal: AbortSignal },
): Promise<number>;
// ---cut---
const worker = ops.createWorker({
  handlers: {
    "documents.ingest": async (payload, { signal }) => {
      // payload is typed from the schema and validated again before the call
      return { indexed: await index(payload.documents, { signal }) }; // stored as the result (JSON)
    },
  },
  concurrency: 16, // handlers at once (default 10)
  listen: { connectionString: process.env.DATABASE_URL }, // LISTEN for wake-ups and cancels
});
await worker.start();
process.on("SIGTERM", () => void worker.stop()); // graceful: see below
