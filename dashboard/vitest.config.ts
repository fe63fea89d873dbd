// The tests drive a browser against real gateways: a step waits for what a person would see, up to its own
// deadline (15 s), so a test as a whole may take longer than vitest's default 5 s.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { testTimeout: 90_000, hookTimeout: 180_000, include: ["test/**/*.test.ts"] },
});
