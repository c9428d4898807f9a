// The replies to one streaming request (a subscription, followed events,
// log lines) as an async iterator.

/**
 * Items that arrive over time, read with `for await` or `next()`.
 *
 * Items wait here until read: read a stream, or `close()` it. Breaking
 * out of `for await` closes it. Closing stops delivery to this stream;
 * the supervisor keeps sending until the connection closes (the protocol
 * has no "unsubscribe"), and the client drops what comes.
 */
export class ReplyStream<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private readonly waiting: Array<{
    resolve: (result: IteratorResult<T>) => void;
    reject: (error: unknown) => void;
  }> = [];
  private ended = false;
  private error: unknown = undefined;

  /** `onClose` runs once, when the reader closes the stream. */
  constructor(private readonly onClose: () => void) {}

  /** Hands `item` to the reader. */
  push(item: T): void {
    if (this.ended) {
      return;
    }
    const waiter = this.waiting.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
    } else {
      this.items.push(item);
    }
  }

  /** Ends the stream once its items are read; with `error`, reading then throws it. */
  end(error?: unknown): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.error = error;
    for (const waiter of this.waiting.splice(0)) {
      if (error === undefined) {
        waiter.resolve({ value: undefined, done: true });
      } else {
        waiter.reject(error);
      }
    }
  }

  /** Whether the stream has ended (items may still wait to be read). */
  get isEnded(): boolean {
    return this.ended;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      return Promise.resolve({ value: this.items.shift() as T, done: false });
    }
    if (this.ended) {
      if (this.error !== undefined) {
        const error = this.error;
        // Thrown once; after that the stream is just done.
        this.error = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Stops the stream: what is buffered is dropped, and `next()` is done. */
  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stops the stream (as `return()`). */
  close(): void {
    const wasEnded = this.ended;
    this.items.length = 0;
    this.end();
    this.error = undefined;
    if (!wasEnded) {
      this.onClose();
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
