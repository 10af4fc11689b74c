import { Module } from "@nestjs/common";
import { APP_FILTER } from "@nestjs/core";
import { OperationsExceptionFilter, OperationsModule } from "prisma-operations/nestjs";
import { IngestHandler } from "./operations/ingest.handler";
import { OperationsController } from "./operations/operations.controller";
import { types } from "./operations/operation-types";
import { WaitHandler } from "./operations/wait.handler";
import { PrismaModule } from "./prisma/prisma.module";
import { PrismaService } from "./prisma/prisma.service";
import { UploadsController } from "./uploads/uploads.controller";

@Module({
  imports: [
    OperationsModule.forRootAsync({
      imports: [PrismaModule],
      inject: [PrismaService],
      useFactory: (prisma: PrismaService) => ({
        prisma, // the app's own client: its models plus the module's
        pool: prisma.pool, // the pool it is built on: the module's statements go there directly
        types,
        worker: { concurrency: 8, listen: { connectionString: process.env.DATABASE_URL } },
      }),
    }),
  ],
  controllers: [OperationsController, UploadsController],
  providers: [
    IngestHandler,
    WaitHandler,
    // 400 with zod issue paths, 404 for a missing (or another tenant's) id, 409 for a conflict
    { provide: APP_FILTER, useClass: OperationsExceptionFilter },
  ],
})
export class AppModule {}
