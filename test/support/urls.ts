export const ENV_SERVER_URL = "PRISMA_OPERATIONS_TEST_SERVER_URL";
export const ENV_TEMPLATE = "PRISMA_OPERATIONS_TEST_TEMPLATE";

/** The same server and credentials, another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
