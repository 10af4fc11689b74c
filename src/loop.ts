/**
 * Runs `pass` again and again until stopped; `pass` returns how long to wait before the next
 * one. `wake()` cuts the wait short — or, during a pass, skips the wait after it — and `stop()`
 * resolves once the pass in progress has finished.
 */
export class Loop {
  private running = false;
  private woken = false;
  private done: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | undefined;

  constructor(private readonly pass: () => Promise<number>) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.done = this.run();
  }

  /** Between passes: waiting for the pause to end or for `wake()`. */
  get waiting(): boolean {
    return this.wakeUp !== undefined;
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.done;
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.woken = false;
      const waitMs = await this.pass();
      if (!this.running || waitMs <= 0 || this.woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }
}
