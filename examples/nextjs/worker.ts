// The worker for the Next.js app, as its own long-running process (next to `next start`):
//   DATABASE_URL=postgresql://… npx tsx examples/nextjs/worker.ts
import { operations } from "./lib/operations";
import { prisma } from "./lib/prisma";

const worker = operations.createWorker({
  concurrency: 8,
  listen: { connectionString: process.env.DATABASE_URL },
  handlers: {
    "documents.ingest": async (payload, { signal }) => {
      signal.throwIfAborted();
      return { indexed: payload.documents.length };
    },
  },
});

void worker.start().then(() => console.log(`worker ${worker.id} started`));
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void worker.stop().then(() => prisma.$disconnect());
  });
}
