export default function Home() {
  return (
    <main>
      <h1>prisma-operations in Next.js</h1>
      <p>
        The API is under <code>/api</code>: <code>POST /api/uploads</code>, <code>POST /api/batches</code>,{" "}
        <code>GET|DELETE /api/batches/:id</code>, <code>POST /api/batches/:id/retry</code>,{" "}
        <code>GET|DELETE /api/operations/:id</code>, <code>POST /api/operations/:id/retry</code>,{" "}
        <code>GET /api/metrics</code>. The work runs in <code>worker.ts</code>, a separate process.
      </p>
    </main>
  );
}
