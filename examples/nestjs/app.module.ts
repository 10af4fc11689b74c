import { Global, Module } from "@nestjs/common";
import { OperationsModule } from "../../src/integrations/nestjs"; // in an app: "prisma-operations/nestjs"
import { IngestHandler, SearchIndex } from "./ingest.handler";
import { types } from "../shared/operation-types";
import { OperationsController } from "./operations.controller";
import { PrismaService } from "./prisma.service";

@Global()
@Module({ providers: [PrismaService], exports: [PrismaService] })
export class PrismaModule {}

@Module({
  imports: [
    PrismaModule,
    OperationsModule.forRootAsync({
      inject: [PrismaService],
      useFactory: (prisma: PrismaService) => ({
        prisma,
        types,
        worker: {
          concurrency: 8,
          listen: process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : false,
        },
      }),
    }),
  ],
  controllers: [OperationsController],
  providers: [SearchIndex, IngestHandler],
})
export class AppModule {}
