// prisma-operations for NestJS (needs @nestjs/common and @nestjs/core 11 or 12, and reflect-metadata).
import "reflect-metadata";

export { OperationsModule, OperationsWorkerHost } from "./operations.module";
export {
  OPERATIONS_MODULE_OPTIONS,
  OPERATIONS_ASYNC_OPTIONS_TYPE,
  OPERATIONS_OPTIONS_TYPE,
  type OperationsModuleOptions,
} from "./operations.module-definition";
export { OperationHandler, type OperationHandlerProvider } from "./operation-handler.decorator";
export { OperationsExceptionFilter } from "./operations-exception.filter";
export { toHttpError, listQueryFromSearchParams } from "../http";
export { OperationsService } from "../../service";
