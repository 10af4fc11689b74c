import { NestFactory } from "@nestjs/core";
import { AppModule } from "./app.module";

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks(); // SIGTERM stops the worker gracefully, then closes the pool
  await app.listen(Number(process.env.PORT ?? 3000));
}

void bootstrap();
