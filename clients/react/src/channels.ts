// useChannel: a channel's members and messages as React state. Components that use the same channel share one
// membership (the client's Channel): the first to mount joins it, the last to unmount leaves it.
import type { Channel, Hapta, HaptaError, Member } from "@hapta/client";
import { useCallback, useMemo, useSyncExternalStore } from "react";
import { useHapta } from "./context.js";
import { Held } from "./held.js";

export type ChannelStatus = "joining" | "joined" | "left" | "error";

/** A message of the channel: `from` is the member who sent it (`{id, user, role}`; "server" for a function's). */
export interface ChannelMessage<D = unknown> {
  from: Member;
  data: D;
}

export interface ChannelResult<D = unknown> {
  /** Who is there, this connection included; `member.profile` carries the fields of their users record the channel
   * shows (where its pattern names presence fields), as you may see them. */
  members: Member[];
  /** The messages heard since the component mounted, the last `keep` of them, oldest first. */
  messages: ChannelMessage<D>[];
  /** Sends `data` to the other members (they hear it; you do not). */
  send: (data: D) => Promise<void>;
  /** "joining", "joined", "left" (the membership ended with the identity it was joined as: a sign-out, another
   * user; a sign-in joins again), or "error" (refused: `error`). */
  status: ChannelStatus;
  error: HaptaError | null;
}

interface ChannelState<D> {
  members: Member[];
  messages: ChannelMessage<D>[];
  status: ChannelStatus;
  error: HaptaError | null;
}

/** The last `keep` of `messages` and `message` (a new array; `keep` 0: none are kept). */
export function keepLast<M>(messages: readonly M[], message: M, keep: number): M[] {
  if (keep <= 0) return [];
  const next = messages.length >= keep ? messages.slice(messages.length - keep + 1) : [...messages];
  next.push(message);
  return next;
}

/** One membership per client and channel, held by however many components use it. Joins and leaves are done in
 * order, each deciding when its turn comes whether it is still wanted (a leave followed at once by a join of the
 * same channel must not leave after the join). */
class Membership {
  private holders = 0;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly channel: Channel) {}

  /** One more holder; resolves once the channel is joined (rejects with the refusal). */
  hold(): Promise<void> {
    this.holders++;
    return this.next(() => (this.holders > 0 && !this.channel.joined ? this.channel.join() : undefined));
  }

  release(): void {
    this.holders--;
    this.next(() => (this.holders === 0 && this.channel.joined ? this.channel.leave() : undefined))
      .catch(() => undefined);   // a leave on a socket that dropped: the gateway ends it with the connection
  }

  /** Join again now (after the membership ended, or when who is there must be learnt afresh). */
  again(): Promise<void> {
    return this.next(() => (this.holders > 0 ? this.channel.join() : undefined));
  }

  private next(step: () => unknown): Promise<void> {
    const done = this.turn.then(step).then(() => undefined);
    this.turn = done.catch(() => undefined);
    return done;
  }
}

const memberships = new WeakMap<Hapta, Map<string, Membership>>();

function membership(client: Hapta, name: string): Membership {
  let found = memberships.get(client);
  if (!found) memberships.set(client, found = new Map());
  let held = found.get(name);
  if (!held) found.set(name, held = new Membership(client.channel(name)));
  return held;
}

/** Joins channel `name` while the component is mounted (`name` null: none) and answers who is there, the messages
 * heard (the last `keep`, 50 by default) and `send`. Kept right across reconnects: the client joins again with its
 * version and is told who came and went. */
export function useChannel<D = unknown>(name: string | null | undefined, options: { keep?: number } = {}):
  ChannelResult<D> {
  const client = useHapta();
  const keep = options.keep ?? 50;
  const held = useMemo(() => {
    const start: ChannelState<D> = { members: [], messages: [], status: "joining", error: null };
    if (!name) return new Held<ChannelState<D>>(start, () => () => undefined);
    return new Held<ChannelState<D>>(start, (set, get) => {
      const channel = client.channel(name);
      const shared = membership(client, name);
      let stopped = false;
      const update = (changes: Partial<ChannelState<D>>) => {
        if (stopped) return;
        const members = channel.joined ? channel.members : [];
        if (members !== get().members || Object.keys(changes).length) set({ ...get(), members, ...changes });
      };
      const joined = (work: Promise<void>) => work.then(() => update({ status: "joined", error: null }),
                                                       (error: HaptaError) => update({ status: "error", error }));
      joined(shared.hold());
      const off = [
        channel.on("presence", () => update({})),
        channel.on("message", (message: ChannelMessage<D>) =>
          update({ messages: keepLast(get().messages, { from: message.from, data: message.data }, keep) })),
        channel.on("left", () => update({ status: "left", members: [] })),
        // after a reconnect the client has joined again (told who came and went) before it is "open"
        client.on("state", (state: string) => { if (state === "open") update({}); }),
        // members may have been missed: the client joins again; so do we, to hear when that is done
        client.on("reset", (data: { channels?: string[] }) => {
          if (data.channels?.includes(name)) joined(shared.again());
        }),
        // a sign-in after the membership ended (a sign-out, another user): join as who this is now
        client.on("auth", (session: unknown) => {
          if (session && get().status === "left") {
            update({ status: "joining" });
            joined(shared.again());
          }
        }),
      ];
      return () => {
        stopped = true;
        off.forEach((unsubscribe) => unsubscribe());
        shared.release();
      };
    });
  }, [client, name, keep]);
  const state = useSyncExternalStore(held.subscribe, held.get, held.get);
  const send = useCallback((data: D): Promise<void> => {
    if (!name) return Promise.reject(new Error("@hapta/react: useChannel(null) has no channel to send to"));
    return client.channel(name).send(data);
  }, [client, name]);
  return { members: state.members, messages: state.messages, status: state.status, error: state.error, send };
}
