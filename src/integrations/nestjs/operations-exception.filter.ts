import { Catch, type ArgumentsHost, type ExceptionFilter } from "@nestjs/common";
import { OperationsError } from "../../errors";
import { toHttpError } from "../http";

/**
 * Maps the module's errors to HTTP: validation → 400 (with zod issue paths), not found (or
 * another tenant's) → 404, conflict → 409. Register it globally or on a controller.
 */
@Catch(OperationsError)
export class OperationsExceptionFilter implements ExceptionFilter {
  catch(error: OperationsError, host: ArgumentsHost): void {
    const response = host
      .switchToHttp()
      .getResponse<{ status(code: number): { json(body: unknown): void } }>();
    const { status, body } = toHttpError(error);
    response.status(status).json(body);
  }
}
