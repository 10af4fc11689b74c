// DATABASE_URL=postgresql://… npx tsx examples/nestjs/main.ts
import "reflect-metadata";
import { NestFactory } from "@nestjs/core";
import { AppModule } from "./app.module";

async function bootstrap() {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks(); // SIGTERM stops the worker gracefully
  await app.listen(Number(process.env.PORT ?? 3000));
}

void bootstrap();
