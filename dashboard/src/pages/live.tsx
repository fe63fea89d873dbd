// Who is connected to this gateway process, and who is in which channel (presence is kept in PostgreSQL, so the
// channels are every process's), every 2 s.
import { useCall } from "../hooks.ts";
import { UserName } from "../names.tsx";
import { Loading, Problem, when } from "../ui.tsx";

interface ConnectionRow { id: number; address: string; role: string; user: string | null; name: string | null;
                          session: string | null; subscriptions: number; channels: string[] }
interface Member { member: string; user: string | null; role: string; joined: unknown }
interface ChannelRow { name: string; members: Member[] }

export function Live() {
  const connections = useCall((h) => h.call<{ process: string; connections: ConnectionRow[] }>("admin.connections"),
                              [], 2000);
  const channels = useCall((h) => h.call<{ channels: ChannelRow[] }>("admin.channels"), [], 2000);
  const rows = connections.data?.connections ?? [];
  return (
    <section>
      <h3>Connections {connections.data && <span class="muted">of process {connections.data.process}:
        {" "}<span id="connection-count">{rows.length}</span></span>}</h3>
      <Problem error={connections.error} />
      <Loading when={connections.data} failed={connections.error}>
        <table id="connections">
          <thead><tr><th>#</th><th>address</th><th>role</th><th>user</th><th>session</th><th>subs</th>
            <th>channels</th></tr></thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id} data-connection={c.id}>
                <td>{c.id}</td><td>{c.address}</td><td>{c.role}</td><td>{c.name ? <span class="admin-name">{c.name}</span> : <UserName id={c.user} />}</td>
                <td><code>{c.session ?? "—"}</code></td><td>{c.subscriptions}</td><td>{c.channels.join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Loading>
      <h3>Channels</h3>
      <Problem error={channels.error} />
      <Loading when={channels.data} failed={channels.error}>
        {channels.data?.channels.length === 0 && <p class="muted">Nobody is in a channel.</p>}
        <div class="cards" id="channels">
          {channels.data?.channels.map((channel) => (
            <article class="card" key={channel.name} data-channel={channel.name}>
              <h4><code>{channel.name}</code> <span class="muted">{channel.members.length} present</span></h4>
              <ul class="list">
                {channel.members.map((m) => (
                  <li key={m.member}>{m.user ? <UserName id={m.user} /> : <code>{m.member}</code>}
                    {" "}<span class="muted">{m.role} since
                    {" "}{when(m.joined)}</span></li>
                ))}
              </ul>
            </article>
          ))}
        </div>
      </Loading>
    </section>
  );
}
