// ---cut---
import { Injectable, Module, type OnApplicationShutdown } from "@nestjs/common";
import { APP_FILTER, NestFactory } from "@nestjs/core";
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { z } from "zod";
import { defineOperationType, type HandlerContext, type Payload } from "prisma-operations";
import {
  OperationHandler,
  OperationsExceptionFilter,
  OperationsModule,
  OperationsService,
  type OperationHandlerProvider,
} from "prisma-operations/nestjs";
import { PrismaClient } from "./generated/prisma/client.js"; // `.js`: required under nodenext, fine elsewhere

@Injectable()
export class PrismaService extends PrismaClient implements OnApplicationShutdown {
  /** The pool the client is built on; the module's statements go to it too. */
  readonly pool: Pool;
  constructor() {
    const pool = new Pool({ connectionString: process.env.DATABASE_URL });
    super({ adapter: new PrismaPg(pool) });
    this.pool = pool;
  }
  // The module's worker stops before application shutdown (beforeApplicationShutdown).
  async onApplicationShutdown(): Promise<void> {
    await this.$disconnect();
    await this.pool.end();
  }
}

@Module({ providers: [PrismaService], exports: [PrismaService] })
export class PrismaModule {}

export const types = {
  "documents.ingest": defineOperationType({
    payload: z.object({ documentIds: z.array(z.string()) }),
    batch: { item: z.string(), toPayload: (documentIds) => ({ documentIds }), split: { maxItems: 50 } },
  }),
};
export type AppTypes = typeof types;
type IngestPayload = Payload<AppTypes["documents.ingest"]>;

@OperationHandler("documents.ingest") // found by discovery; dependencies injected as usual
@Injectable()
export class IngestHandler implements OperationHandlerProvider<IngestPayload> {
  async handle(payload: IngestPayload, { signal }: HandlerContext) {
    signal.throwIfAborted();
    return { indexed: payload.documentIds.length };
  }
}

@Injectable()
export class UploadsService {
  // Typed with your operation types and your client: `transaction`'s `tx` is your PrismaService's.
  constructor(private readonly operations: OperationsService<AppTypes, PrismaService>) {}

  submit(tenantId: string, uploadId: string, documentIds: string[]) {
    return this.operations.transaction(async (tx) => {
      await tx.upload.update({ where: { id: uploadId }, data: { state: "queued" } }); // your own model
      return this.operations.submitBatch(
        { tenantId, type: "documents.ingest", items: documentIds, idempotencyKey: `upload-${uploadId}` },
        { tx },
      );
    });
  }
}

@Module({
  imports: [
    PrismaModule,
    OperationsModule.forRootAsync({
      imports: [PrismaModule],
      inject: [PrismaService],
      useFactory: (prisma: PrismaService) => ({
        prisma,
        pool: prisma.pool,
        types,
        worker: { concurrency: 8, listen: { connectionString: process.env.DATABASE_URL } },
      }),
    }),
  ],
  providers: [
    IngestHandler,
    UploadsService,
    { provide: APP_FILTER, useClass: OperationsExceptionFilter }, // 400 / 404 / 409 / 503
  ],
})
export class AppModule {}

// main.ts (Nest does not read .env: `node --env-file=.env dist/main.js`, or @nestjs/config)
const app = await NestFactory.create(AppModule);
app.enableShutdownHooks(); // SIGTERM stops the worker gracefully
await app.listen(3000);
