import { Injectable, type OnModuleDestroy } from "@nestjs/common";
import { PrismaPg } from "@prisma/adapter-pg";
import { preparedStatementNames } from "prisma-operations";
import { PrismaClient } from "../generated/prisma/client";

/** The app's generated PrismaClient as a provider (the usual NestJS pattern). */
@Injectable()
export class PrismaService extends PrismaClient implements OnModuleDestroy {
  constructor() {
    super({
      adapter: new PrismaPg(
        { connectionString: process.env.DATABASE_URL },
        { statementNameGenerator: preparedStatementNames() },
      ),
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.$disconnect();
  }
}
