import { BerthError } from '../core/errors.ts';

export interface RateLimitDecision {
  limit: number;
  remaining: number;
  /** Unix time in seconds when the window resets. */
  resetAt: number;
  allowed: boolean;
}

/**
 * A fixed window per key, in memory: good enough for one API process, and a
 * replica behind a balancer only makes the effective limit more generous.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAtMs: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  take(key: string, nowMs = Date.now()): RateLimitDecision {
    let window = this.windows.get(key);
    if (!window || window.resetAtMs <= nowMs) {
      if (this.windows.size > 10_000) this.prune(nowMs);
      window = { count: 0, resetAtMs: nowMs + this.windowMs };
      this.windows.set(key, window);
    }
    window.count += 1;
    return {
      limit: this.limit,
      remaining: Math.max(0, this.limit - window.count),
      resetAt: Math.ceil(window.resetAtMs / 1000),
      allowed: window.count <= this.limit,
    };
  }

  private prune(nowMs: number): void {
    for (const [key, window] of this.windows) if (window.resetAtMs <= nowMs) this.windows.delete(key);
  }
}

export class RateLimitedError extends BerthError {
  constructor(decision: RateLimitDecision, nowMs = Date.now()) {
    super(429, 'rate_limit_error', 'rate_limited', `rate limit of ${decision.limit} requests exceeded; retry after the window resets`, {
      headers: { 'Retry-After': String(Math.max(1, decision.resetAt - Math.floor(nowMs / 1000))) },
    });
  }
}
