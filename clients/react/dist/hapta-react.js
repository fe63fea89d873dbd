// @hapta/react (built from clients/react/src by build.mjs; do not edit)

// src/context.ts
import { createContext, createElement, useContext } from "react";
var HaptaContext = createContext(null);
function HaptaProvider({ client, children }) {
  return createElement(HaptaContext.Provider, { value: client }, children);
}
function useHapta() {
  const client = useContext(HaptaContext);
  if (!client) throw new Error("@hapta/react: a hook was used outside <HaptaProvider client={hapta}>");
  return client;
}

// src/queries.ts
import { useMemo, useSyncExternalStore } from "react";

// src/held.ts
var Held = class {
  /** `linger`: milliseconds the work outlives its last listener (a remount within it keeps it). */
  constructor(state, start, linger = 0) {
    this.state = state;
    this.start = start;
    this.linger = linger;
  }
  state;
  start;
  linger;
  listeners = /* @__PURE__ */ new Set();
  stopper = null;
  lingering = null;
  /** The current state: the same object until it changes (what useSyncExternalStore asks of a snapshot). */
  get = () => this.state;
  subscribe = (listener) => {
    this.listeners.add(listener);
    if (this.lingering !== null) {
      clearTimeout(this.lingering);
      this.lingering = null;
    } else if (this.stopper === null) {
      this.stopper = () => void 0;
      this.stopper = this.start(this.set, this.get);
    }
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0 || this.stopper === null) return;
      this.lingering = setTimeout(() => {
        this.lingering = null;
        const stop = this.stopper;
        this.stopper = null;
        stop?.();
      }, this.linger);
    };
  };
  /** Whether its work runs (between the first listener and the end of the linger after the last). */
  get running() {
    return this.stopper !== null;
  }
  set = (next) => {
    if (next === this.state) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener();
  };
};

// src/queries.ts
var NONE = [];
var IDLE = { items: NONE, status: "idle", pending: false, error: null };
var LOADING = { items: NONE, status: "loading", pending: false, error: null };
function queryOptions(options = {}) {
  const asked = { sort: options.sort ?? "-created", limit: options.limit ?? 50 };
  if (options.filter !== void 0 && options.filter.trim() !== "") asked.filter = options.filter;
  if (options.expand !== void 0) asked.expand = options.expand;
  if (options.fields !== void 0) asked.fields = options.fields;
  return asked;
}
function queryKey(collection, options) {
  return JSON.stringify([
    collection,
    options.sort,
    options.limit,
    options.filter ?? null,
    options.expand ?? null,
    options.fields ?? null
  ]);
}
function recordOptions(id, options = {}) {
  return queryOptions({ filter: `id = ${JSON.stringify(id)}`, sort: "id", limit: 1, ...options });
}
function pendingOf(query, items) {
  const marks = query;
  if (!marks) return false;
  if (typeof marks.pending === "boolean") return marks.pending;
  if (typeof marks.isPending === "function") return items.some((item) => marks.isPending(item));
  return items.some((item) => item?.$pending === true);
}
function useQuery(collection, options = {}) {
  const client = useHapta();
  const asked = queryOptions(options);
  const key = collection ? queryKey(collection, asked) : "";
  const held = useMemo(() => {
    if (!collection) return new Held(IDLE, () => () => void 0);
    return new Held(LOADING, (set, get) => {
      let query = null;
      let stopped = false;
      const shown = (items) => set({ items: [...items], status: "ready", pending: pendingOf(query, items), error: null });
      client.records(collection).query(asked, (items) => {
        if (!stopped) shown(items);
      }).then((started) => {
        query = started;
        if (stopped) started.stop().catch(() => void 0);
        else if (pendingOf(started, started.items) !== get().pending) shown(started.items);
      }, (error) => {
        if (!stopped) set({ items: NONE, status: "error", pending: false, error });
      });
      return () => {
        stopped = true;
        query?.stop().catch(() => void 0);
      };
    });
  }, [client, key]);
  return useSyncExternalStore(held.subscribe, held.get, held.get);
}
function useRecord(collection, id, options = {}) {
  const asked = id ? recordOptions(id, options) : {};
  const { items, status, pending, error } = useQuery(id ? collection : null, asked);
  return { record: items[0] ?? null, status, pending, error };
}

// src/session.ts
import { useCallback, useSyncExternalStore as useSyncExternalStore2 } from "react";
function useSession() {
  const client = useHapta();
  const subscribe = useCallback((changed) => client.on("auth", changed), [client]);
  const get = () => client.session;
  return useSyncExternalStore2(subscribe, get, get);
}
function useConnectionState() {
  const client = useHapta();
  const subscribe = useCallback((changed) => client.on("state", changed), [client]);
  const get = () => client.state;
  return useSyncExternalStore2(subscribe, get, get);
}

// src/channels.ts
import { useCallback as useCallback2, useMemo as useMemo2, useSyncExternalStore as useSyncExternalStore3 } from "react";
function keepLast(messages, message, keep) {
  if (keep <= 0) return [];
  const next = messages.length >= keep ? messages.slice(messages.length - keep + 1) : [...messages];
  next.push(message);
  return next;
}
var Membership = class {
  constructor(channel) {
    this.channel = channel;
  }
  channel;
  holders = 0;
  turn = Promise.resolve();
  /** One more holder; resolves once the channel is joined (rejects with the refusal). */
  hold() {
    this.holders++;
    return this.next(() => this.holders > 0 && !this.channel.joined ? this.channel.join() : void 0);
  }
  release() {
    this.holders--;
    this.next(() => this.holders === 0 && this.channel.joined ? this.channel.leave() : void 0).catch(() => void 0);
  }
  /** Join again now (after the membership ended, or when who is there must be learnt afresh). */
  again() {
    return this.next(() => this.holders > 0 ? this.channel.join() : void 0);
  }
  next(step) {
    const done = this.turn.then(step).then(() => void 0);
    this.turn = done.catch(() => void 0);
    return done;
  }
};
var memberships = /* @__PURE__ */ new WeakMap();
function membership(client, name) {
  let found = memberships.get(client);
  if (!found) memberships.set(client, found = /* @__PURE__ */ new Map());
  let held = found.get(name);
  if (!held) found.set(name, held = new Membership(client.channel(name)));
  return held;
}
function useChannel(name, options = {}) {
  const client = useHapta();
  const keep = options.keep ?? 50;
  const held = useMemo2(() => {
    const start = { members: [], messages: [], status: "joining", error: null };
    if (!name) return new Held(start, () => () => void 0);
    return new Held(start, (set, get) => {
      const channel = client.channel(name);
      const shared = membership(client, name);
      let stopped = false;
      const update = (changes) => {
        if (stopped) return;
        const members = channel.joined ? channel.members : [];
        if (members !== get().members || Object.keys(changes).length) set({ ...get(), members, ...changes });
      };
      const joined = (work) => work.then(
        () => update({ status: "joined", error: null }),
        (error) => update({ status: "error", error })
      );
      joined(shared.hold());
      const off = [
        channel.on("presence", () => update({})),
        channel.on("message", (message) => update({ messages: keepLast(get().messages, { from: message.from, data: message.data }, keep) })),
        channel.on("left", () => update({ status: "left", members: [] })),
        // after a reconnect the client has joined again (told who came and went) before it is "open"
        client.on("state", (state2) => {
          if (state2 === "open") update({});
        }),
        // members may have been missed: the client joins again; so do we, to hear when that is done
        client.on("reset", (data) => {
          if (data.channels?.includes(name)) joined(shared.again());
        }),
        // a sign-in after the membership ended (a sign-out, another user): join as who this is now
        client.on("auth", (session) => {
          if (session && get().status === "left") {
            update({ status: "joining" });
            joined(shared.again());
          }
        })
      ];
      return () => {
        stopped = true;
        off.forEach((unsubscribe) => unsubscribe());
        shared.release();
      };
    });
  }, [client, name, keep]);
  const state = useSyncExternalStore3(held.subscribe, held.get, held.get);
  const send = useCallback2((data) => {
    if (!name) return Promise.reject(new Error("@hapta/react: useChannel(null) has no channel to send to"));
    return client.channel(name).send(data);
  }, [client, name]);
  return { members: state.members, messages: state.messages, status: state.status, error: state.error, send };
}

// src/mutations.ts
import { useEffect, useMemo as useMemo3, useRef, useState } from "react";
var IDLE2 = { status: "idle", error: null };
function useMutation() {
  const client = useHapta();
  const [state, setState] = useState(IDLE2);
  const latest = useRef(0);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const writes = useMemo3(() => {
    async function run(write) {
      const call = ++latest.current;
      setState({ status: "pending", error: null });
      const current = () => mounted.current && call === latest.current;
      try {
        const done = await write();
        if (current()) setState({ status: "success", error: null });
        return done;
      } catch (error) {
        if (current()) setState({ status: "error", error });
        return void 0;
      }
    }
    return {
      create: (collection, data, options) => run(() => client.records(collection).create(data, options)),
      update: (collection, id, data, options) => run(() => client.records(collection).update(id, data, options)),
      delete: (collection, id, options) => run(() => client.records(collection).delete(id, options)),
      reset: () => {
        latest.current++;
        setState(IDLE2);
      }
    };
  }, [client]);
  return { ...writes, status: state.status, error: state.error };
}
export {
  HaptaProvider,
  keepLast,
  pendingOf,
  queryKey,
  queryOptions,
  recordOptions,
  useChannel,
  useConnectionState,
  useHapta,
  useMutation,
  useQuery,
  useRecord,
  useSession
};
