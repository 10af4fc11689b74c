// preparedStatementNames prepares the module's statements once per connection and leaves the
// application's own queries unnamed: an app passes it to its one client, whose queries (Prisma's,
// with IN lists of every length) are an open-ended set that must not stay prepared on each
// connection.
import { PrismaPg } from "@prisma/adapter-pg";
import { z } from "zod";
import { createOperations, defineOperationType, preparedStatementNames, silentLogger } from "../../src";
import { PrismaClient } from "../../src/generated/prisma/client";
import { createTestDatabase, type TestDatabase } from "../support/db";

let db: TestDatabase;
let prisma: PrismaClient;

beforeAll(async () => {
  db = await createTestDatabase();
  // One connection, so that every query below runs on the session whose statements are read.
  prisma = new PrismaClient({
    adapter: new PrismaPg(
      { connectionString: db.url, max: 1 },
      { statementNameGenerator: preparedStatementNames() },
    ),
  });
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.close();
});

it("prepares the module's statements, once, and none of the application's", async () => {
  const ops = createOperations({
    prisma,
    types: { task: defineOperationType({ payload: z.object({ n: z.number() }) }) },
    logger: silentLogger,
  });
  for (let n = 0; n < 3; n++)
    await ops.submitBatch({ tenantId: "t", type: "task", items: [{ n }, { n: n + 1 }] });
  // Reads filtered by tenant are left unnamed (a generic plan made for the average tenant scans the
  // primary key backwards: plans.test.ts).
  for (let n = 0; n < 6; n++) await ops.listOperations({ tenantId: "t" });
  await prisma.operationBatch.findMany({ where: { id: { in: ["0192f0a0-0000-7000-8000-000000000001"] } } });
  await prisma.$queryRawUnsafe("SELECT 1 AS app_query");

  const prepared = await prisma.$queryRawUnsafe<{ name: string; statement: string }[]>(
    "SELECT name, statement FROM pg_prepared_statements ORDER BY name",
  );
  const submits = prepared.filter((p) => p.statement.includes('INSERT INTO "operation_batches"'));
  expect(submits).toHaveLength(1);
  expect(submits[0]!.name).toMatch(/^po_[0-9a-f]{20}$/);
  expect(prepared.filter((p) => !p.name.startsWith("po_"))).toEqual([]);
  expect(
    prepared.filter((p) =>
      /app_query|pg_prepared_statements|"operation_batches"\."id"|ORDER BY o\.id DESC/.test(p.statement),
    ),
  ).toEqual([]);
});
