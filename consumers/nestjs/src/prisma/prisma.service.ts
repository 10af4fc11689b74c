import { Injectable, type OnApplicationShutdown } from "@nestjs/common";
import { PrismaPg } from "@prisma/adapter-pg";
import { Pool } from "pg";
import { PrismaClient } from "../generated/prisma/client";

/** The app's generated PrismaClient as a provider (the usual NestJS pattern), on a pool of its own. */
@Injectable()
export class PrismaService extends PrismaClient implements OnApplicationShutdown {
  /** The pool the client is built on: prisma-operations sends its own statements to it too. */
  readonly pool: Pool;

  constructor() {
    const pool = new Pool({ connectionString: process.env.DATABASE_URL });
    super({ adapter: new PrismaPg(pool) });
    this.pool = pool;
  }

  // OperationsModule stops its worker before application shutdown: the pool outlives its last outcome.
  async onApplicationShutdown(): Promise<void> {
    await this.$disconnect();
    await this.pool.end();
  }
}
