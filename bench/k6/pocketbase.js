// k6 against PocketBase over HTTP keep-alive: each VU a closed loop of one request at a time for WARMUP +
// DURATION seconds; only answers in the measured window count. Env as bench/k6/hapta.js.
import http from "k6/http";
import { Counter } from "k6/metrics";

const seed = JSON.parse(open(__ENV.SEED));
const ops = new Counter("ops");
const failures = new Counter("failures");
const warmup = Number(__ENV.WARMUP) * 1000;
const duration = Number(__ENV.DURATION) * 1000;

export const options = {
  scenarios: { closed: { executor: "per-vu-iterations", vus: Number(__ENV.VUS), iterations: 1,
                         maxDuration: `${(warmup + duration) / 1000 + 30}s` } },
  summaryTrendStats: [],
  discardResponseBodies: false,
};

export default function () {
  const vu = __VU - 1;
  const user = seed.users[vu % seed.users.length];
  const params = { headers: { Authorization: user.token, "Content-Type": "application/json" } };
  const base = `${__ENV.URL}/api/collections/posts/records`;
  const started = Date.now();
  let n = 0;
  while (Date.now() - started < warmup + duration) {
    n++;
    let answer;
    if (__ENV.CASE === "ping") answer = http.get(`${__ENV.URL}/api/health`);
    else if (__ENV.CASE === "get") answer = http.get(`${base}/${seed.posts[(vu * 7 + n) % seed.posts.length]}`, params);
    else if (__ENV.CASE === "list") answer = http.get(`${base}?filter=(public%3Dtrue)&perPage=20&skipTotal=1`, params);
    else if (__ENV.CASE === "update") {
      answer = http.patch(`${base}/${user.posts[n % user.posts.length]}`, JSON.stringify({ text: `k6 ${n}` }), params);
    } else if (__ENV.CASE === "delete") {   // a create, then the delete of what it made: one operation
      answer = http.post(base, JSON.stringify({ author: user.id, text: `k6 ${n}` }), params);
      if (answer.status === 200) answer = http.del(`${base}/${answer.json().id}`, null, params);
    } else answer = http.post(base, JSON.stringify({ author: user.id, text: `k6 ${n}`, public: true }), params);
    if (Date.now() - started >= warmup) {
      if (answer.status === 200 || answer.status === 204) ops.add(1); else failures.add(1);
    }
  }
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  return { [__ENV.OUT]: JSON.stringify({ ops: count("ops"), failures: count("failures") }) };
}
