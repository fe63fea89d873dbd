// k6 against Hapta (or the bare echo server): each VU holds one WebSocket and keeps one request in flight (a
// closed loop) for WARMUP + DURATION seconds; only replies in the measured window count. Env: URL, SEED (the JSON
// bench.peer wrote), CASE (ping | get | list | create | update | delete), WARMUP, DURATION, OUT (where the counts go).
import ws from "k6/ws";
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
};

// delete: a create, then the delete of the record it made (`made`), one operation
function request(id, vu, made) {
  const user = seed.users[vu % seed.users.length];
  const post = seed.posts[(vu * 7 + id) % seed.posts.length];
  switch (__ENV.CASE) {
    case "get": return { id, op: "records.get", args: { collection: "posts", id: post } };
    case "list": return { id, op: "records.list", args: { collection: "posts", filter: "public = true", per_page: 20 } };
    case "create": return { id, op: "records.create", args: { collection: "posts",
                                                               data: { author: user.id, text: `k6 ${id}`, public: true } } };
    case "update": return { id, op: "records.update", args: { collection: "posts", id: user.posts[id % user.posts.length],
                                                               data: { text: `k6 ${id}` } } };
    case "delete": return made === null
      ? { id, op: "records.create", args: { collection: "posts", data: { author: user.id, text: `k6 ${id}` } } }
      : { id, op: "records.delete", args: { collection: "posts", id: made } };
    default: return { id, op: "ping" };
  }
}

export default function () {
  const vu = __VU - 1;
  const user = seed.users[vu % seed.users.length];
  ws.connect(__ENV.URL, { headers: { "Sec-WebSocket-Protocol": "hapta.v1.json" } }, (socket) => {
    let next = 1;
    let started = 0;
    let made = null;
    const send = () => socket.send(JSON.stringify(request(next++, vu, made)));
    socket.on("open", () => {
      if (__ENV.CASE === "ping" || !user.token) { started = Date.now(); send(); return; }
      socket.send(JSON.stringify({ id: 0, op: "auth.resume", args: { token: user.token } }));
    });
    socket.on("message", (data) => {
      const message = JSON.parse(data);
      for (const reply of Array.isArray(message) ? message : [message]) {
        if (reply.event) continue;
        if (reply.id === 0) { started = Date.now(); send(); continue; }
        if (__ENV.CASE === "delete" && made === null && reply.ok) { made = reply.data.id; send(); continue; }
        made = null;
        const at = Date.now() - started;
        if (at >= warmup && at < warmup + duration) {
          if (reply.ok) ops.add(1); else failures.add(1);
        }
        send();
      }
    });
    socket.setTimeout(() => socket.close(), warmup + duration + 1000);
  });
}

export function handleSummary(data) {
  const count = (name) => (data.metrics[name] ? data.metrics[name].values.count : 0);
  return { [__ENV.OUT]: JSON.stringify({ ops: count("ops"), failures: count("failures") }) };
}
