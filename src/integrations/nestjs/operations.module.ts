import {
  Inject,
  Injectable,
  Logger as NestLogger,
  Module,
  type BeforeApplicationShutdown,
  type OnModuleInit,
} from "@nestjs/common";
import { DiscoveryModule, DiscoveryService } from "@nestjs/core";
import type { Handlers } from "../../execution/handlers";
import type { Worker } from "../../execution/worker";
import type { OperationTypes } from "../../operation-types";
import { createOperations, OperationsService } from "../../service";
import { OPERATION_HANDLER_TYPE, type OperationHandlerProvider } from "./operation-handler.decorator";
import {
  ConfigurableOperationsModule,
  OPERATIONS_MODULE_OPTIONS,
  type OperationsModuleOptions,
} from "./operations.module-definition";

/**
 * Starts the worker with the application and stops it on shutdown — before application shutdown,
 * so that a provider which closes the database pool in `onApplicationShutdown` closes it after the
 * worker's last outcomes are recorded; finds the handler providers.
 */
@Injectable()
export class OperationsWorkerHost implements OnModuleInit, BeforeApplicationShutdown {
  private worker: Worker | undefined;
  private readonly logger = new NestLogger("OperationsModule");

  constructor(
    @Inject(OPERATIONS_MODULE_OPTIONS) private readonly options: OperationsModuleOptions,
    @Inject(OperationsService) private readonly operations: OperationsService<OperationTypes>,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
  ) {}

  /** The handlers found among the application's providers, by operation type. */
  discoverHandlers(): Handlers<OperationTypes> {
    const handlers: Handlers<OperationTypes> = {};
    for (const wrapper of this.discovery.getProviders()) {
      const type = wrapper.metatype
        ? Reflect.getMetadata(OPERATION_HANDLER_TYPE, wrapper.metatype)
        : undefined;
      if (typeof type !== "string" || !wrapper.instance) continue;
      if (!this.operations.typeNames.includes(type)) {
        throw new Error(
          `@OperationHandler("${type}") on ${wrapper.name}: no such operation type is registered`,
        );
      }
      if (handlers[type]) throw new Error(`two @OperationHandler providers for "${type}"`);
      const provider = wrapper.instance as OperationHandlerProvider;
      handlers[type] = (payload, context) => provider.handle(payload, context);
    }
    return handlers;
  }

  async onModuleInit(): Promise<void> {
    if (!this.options.worker) return;
    const handlers = this.discoverHandlers();
    if (Object.keys(handlers).length === 0) {
      this.logger.warn("worker enabled but no @OperationHandler provider was found; not starting it");
      return;
    }
    this.worker = this.operations.createWorker({ ...this.options.worker, handlers });
    await this.worker.start();
    this.logger.log(`worker ${this.worker.id} started for ${Object.keys(handlers).join(", ")}`);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker?.stop();
  }

  /** The running worker, if any (for health checks and tests). */
  get runningWorker(): Worker | undefined {
    return this.worker;
  }
}

/**
 * prisma-operations as a NestJS module: provides `OperationsService` (inject it by class) and,
 * with `worker` set, runs a worker for the `@OperationHandler` providers within the app's
 * lifecycle. Global by default (`isGlobal: false` to scope it).
 *
 * @example
 * OperationsModule.forRootAsync({
 *   imports: [PrismaModule],
 *   inject: [PrismaService],
 *   useFactory: (prisma: PrismaService) => ({ prisma, types, worker: { concurrency: 8 } }),
 * })
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: OperationsService,
      useFactory: (options: OperationsModuleOptions) => createOperations(options),
      inject: [OPERATIONS_MODULE_OPTIONS],
    },
    OperationsWorkerHost,
  ],
  exports: [OperationsService, OperationsWorkerHost],
})
export class OperationsModule extends ConfigurableOperationsModule {}
