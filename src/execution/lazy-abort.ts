// An abort controller whose AbortSignal is made only when someone asks for it.

/**
 * Aborts like an AbortController, but makes the AbortController (and its signal) only when
 * `signal` is read: most handlers never read theirs, and making one for every claimed row was the
 * largest cost of the worker's own code in a drain (bench/profile-drain.ts --cpuprofile, 2 cores:
 * 178 ms of about 2.1 s on the CPU). A signal asked for after the abort is aborted already, with
 * the same reason; the first abort's reason wins, as with AbortController.
 */
export class LazyAbortController {
  private controller: AbortController | undefined;
  private abortedWith: { reason: unknown } | undefined;

  get aborted(): boolean {
    return this.abortedWith !== undefined;
  }

  get reason(): unknown {
    return this.abortedWith?.reason;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortedWith) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.abortedWith) return;
    this.abortedWith = { reason };
    this.controller?.abort(reason);
  }
}
