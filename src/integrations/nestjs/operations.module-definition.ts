import { ConfigurableModuleBuilder } from "@nestjs/common";
import type { RelayOptions } from "../../outbox/relay";
import type { ReaperOptions } from "../../execution/reaper";
import type { WorkerOptions } from "../../execution/worker";
import type { OperationTypes } from "../../operation-types";
import type { OperationsOptions } from "../../service-types";

/** What `OperationsModule.forRoot` / `forRootAsync` take. */
export interface OperationsModuleOptions<
  T extends OperationTypes = OperationTypes,
> extends OperationsOptions<T> {
  /**
   * Start a worker with the application (onModuleInit) and stop it gracefully on shutdown
   * (beforeApplicationShutdown; call `app.enableShutdownHooks()` for signals). Its handlers are the
   * providers decorated with `@OperationHandler(type)`. Omit or `false` for an app that only submits.
   */
  worker?:
    | (WorkerOptions & { relay?: Partial<RelayOptions> | false; reaper?: Partial<ReaperOptions> | false })
    | false;
}

export const {
  ConfigurableModuleClass: ConfigurableOperationsModule,
  MODULE_OPTIONS_TOKEN: OPERATIONS_MODULE_OPTIONS,
  OPTIONS_TYPE: OPERATIONS_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: OPERATIONS_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<OperationsModuleOptions>({ moduleName: "Operations" })
  .setClassMethodName("forRoot")
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
