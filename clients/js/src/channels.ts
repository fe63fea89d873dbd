// Channels: presence and messages for what is not a record (typing indicators, rooms). After a reconnect each
// joined channel is joined again with the version of its last answer, and the gateway says only who joined and
// left since, so `members` stays right.
import type { Json } from "./errors.js";
import type { Caller, Requests } from "./requests.js";

export interface Member {
  id: string;
  /** The user id (null for anon or admin). */
  user: string | null;
  role: string;
  /** Where the channel's pattern names presence fields (App.channels): those fields of the member's users record
   * as this reader may see them (each null where its guard does not hold for the reader), or null where the reader
   * may not view that record (or there is none: anon, admin). Absent in other channels, and in leaves. */
  profile?: Record<string, unknown> | null;
}

export type Handler = (data: any) => void;

/** A channel: presence and messages for what is not a record (typing indicators, rooms). */
export class Channel {
  /** Who is there, this connection included, kept right across reconnects. */
  members: Member[] = [];
  version: string | null = null;
  joined = false;
  private handlers: { message: Handler[]; presence: Handler[]; left: Handler[] } =
    { message: [], presence: [], left: [] };

  constructor(private readonly hapta: Caller, readonly name: string) {}

  async join(): Promise<Member[]> {
    const answer = await this.hapta.call("channels.join", { channel: this.name });
    this.joined = true;
    this.apply(answer);
    return this.members;
  }

  send(data: unknown): Promise<void> {
    return this.hapta.call("channels.publish", { channel: this.name, data });
  }

  async leave(): Promise<void> {
    this.joined = false;
    await this.hapta.call("channels.leave", { channel: this.name });
  }

  /** "message" (`{from, data}`), "presence" (`{action, member}`, after `members` changed) or "left"
   * (`{reason}`: the membership ended with the identity it was joined as). Returns the unsubscriber. */
  on(event: "message" | "presence" | "left", handler: Handler): () => void {
    this.handlers[event].push(handler);
    return () => { this.handlers[event] = this.handlers[event].filter((h) => h !== handler); };
  }

  /** @internal a join's answer: everyone, or (a rejoin with a version) who joined and left since. */
  apply(answer: Json): void {
    if (Array.isArray(answer.members)) {
      this.members = answer.members as Member[];
    } else {
      const left = new Set((answer.left as Member[]).map((m) => m.id));
      const kept = this.members.filter((m) => !left.has(m.id));
      const known = new Set(kept.map((m) => m.id));
      this.members = [...kept, ...(answer.joined as Member[]).filter((m) => !known.has(m.id))];
    }
    this.version = (answer.version as string) ?? null;
  }

  /** @internal */
  heard(event: string, data: Json): void {
    if (event === "channels.presence") {
      const member = data.member as Member;
      this.members = this.members.filter((m) => m.id !== member.id);
      if (data.action === "join") this.members.push(member);
      this.handlers.presence.forEach((h) => h(data));
    } else if (event === "channels.message") {
      this.handlers.message.forEach((h) => h(data));
    } else if (event === "channels.left") {
      this.joined = false;
      this.handlers.left.forEach((h) => h(data));
    }
  }
}

/** The client's channels by name: one Channel per name, joined again on every new socket. */
export class Channels {
  private channels = new Map<string, Channel>();

  /** `client` is what each Channel calls through (the Hapta). */
  constructor(private readonly client: Caller, private readonly requests: Requests) {}

  get(name: string): Channel {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(this.client, name);
      this.channels.set(name, channel);
    }
    return channel;
  }

  /** On the socket being restored: every joined channel again, told only who came and went since. */
  async rejoin(): Promise<void> {
    for (const channel of this.channels.values()) {
      if (!channel.joined) continue;
      channel.apply(await this.requests.direct("channels.join", { channel: channel.name, version: channel.version }));
    }
  }

  /** channels.presence, channels.message, channels.left */
  heard(event: string, data: Json): void {
    this.channels.get(data.channel as string)?.heard(event, data);
  }

  /** realtime.reset: who is in these channels cannot be told as a difference; join them afresh. */
  reset(names: string[]): void {
    for (const name of names) {
      const joined = this.channels.get(name);
      if (joined?.joined) joined.join().catch(() => undefined);   // learn again who is there
    }
  }
}
