// The page the browser tests drive: @hapta/react's hooks (its committed dist/) in components rendered in
// StrictMode (so every effect mounts, unmounts and mounts again, as in development), on @hapta/client's dist/.
// esbuild bundles it with React's development build (browser.test.ts); each element says what it shows.
import { Hapta } from "@hapta/client";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { HaptaProvider, useChannel, useConnectionState, useMutation, useQuery, useRecord, useSession }
  from "../dist/hapta-react.js";

function Who() {
  const session = useSession();
  const state = useConnectionState();
  return <p id="who">{session ? String(session.user.username) : "nobody"} ({state})</p>;
}

function Feed({ tag }: { tag: string }) {
  const { items, status, pending } = useQuery<any>("posts", { filter: `text ~ "${tag}"`, sort: "-created", limit: 3 });
  return (
    <ul id="feed" data-status={status} data-pending={String(pending)}>
      {items.map((post) => <li key={post.id} data-id={post.id}>{post.text}</li>)}
    </ul>
  );
}

function One({ id }: { id: string }) {
  const { record, status } = useRecord<any>("posts", id, { expand: ["author"] });
  return <p id="one" data-status={status}>{record ? `${record.text} by ${record.expand?.author?.username}` : "none"}</p>;
}

function Room({ name }: { name: string }) {
  const { members, messages, status, send } = useChannel<string>(name);
  return (
    <div id="room" data-status={status}>
      <ul>
        {members.map((member) => (
          <li key={member.id} className="member">
            {String(member.profile?.username)} {String(member.profile?.email ?? "(hidden)")}
          </li>
        ))}
      </ul>
      <ol>{messages.map((message, i) => <li key={i} className="message">{message.data}</li>)}</ol>
      <button id="say" onClick={() => send("hello from the hook")}>say</button>
    </div>
  );
}

function Writer() {
  const session = useSession();
  const { create, status, error } = useMutation();
  const post = (text: string) => create("posts", { author: session!.user.id, text, public: true });
  return (
    <div>
      <button id="too-long" onClick={() => post("x".repeat(300))}>too long</button>
      <button id="fine" onClick={() => post("a fine post")}>fine</button>
      <p id="mutation" data-status={status}>{error ? `${error.code}: ${error.message}` : ""}</p>
    </div>
  );
}

function App({ tag, id, room }: { tag: string; id: string | null; room: string }) {
  return (
    <>
      <Who />
      <Feed tag={tag} />
      {id && <One id={id} />}
      <Room name={room} />
      <Writer />
    </>
  );
}

/** The op of every request this page sends, to count what the hooks ask of the gateway. */
const sent: string[] = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (this: WebSocket, data: any) {
  if (typeof data === "string") sent.push(JSON.parse(data).op);
  return send.call(this, data);
};

let root: ReturnType<typeof createRoot> | null = null;
Object.assign(window, {
  Hapta,
  sent,
  mount(client: Hapta, props: { tag: string; id: string | null; room: string }) {
    root ??= createRoot(document.getElementById("root")!);
    root.render(<StrictMode><HaptaProvider client={client}><App {...props} /></HaptaProvider></StrictMode>);
  },
  unmount() {
    root?.unmount();
    root = null;
  },
  ready: true,
});
