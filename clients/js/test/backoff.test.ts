import { describe, expect, it } from "vitest";
import { backoffDelay } from "../src/hapta";

describe("backoffDelay", () => {
  it("doubles up to the cap, then stays there", () => {
    const top = (attempt: number) => backoffDelay(attempt, 250, 15_000, () => 1);
    expect([0, 1, 2, 3, 6, 7, 20].map(top)).toEqual([250, 500, 1000, 2000, 15_000, 15_000, 15_000]);
  });

  it("jitters between half and all of the delay, so that clients cut off together come back apart", () => {
    expect(backoffDelay(3, 250, 15_000, () => 0)).toBe(1000);
    const spread = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(4, 250, 15_000))));
    expect(spread.size).toBeGreaterThan(10);
    for (const delay of spread) expect(delay >= 2000 && delay <= 4000).toBe(true);
  });
});
