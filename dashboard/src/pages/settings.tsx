// The settings in force, each with where it came from (the environment, .env beside config.py, or the default);
// secrets arrive masked from the gateway (admin.settings), so no secret is ever in this page. And a test mail
// through the configured SMTP, with what the server answered.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import { Loading, Problem } from "../ui.tsx";

interface Setting { name: string; value: string | boolean | null; source: "env" | ".env" | "default"; secret: boolean }

export function Settings() {
  const hapta = useHapta();
  const settings = useCall((h) => h.call<{ settings: Setting[]; production: boolean }>("admin.settings"), []);
  const [to, setTo] = useState("");
  const [outcome, setOutcome] = useState<{ sent: boolean; message: string } | null>(null);
  const [sending, setSending] = useState(false);
  const send = async () => {
    setSending(true);
    try {
      setOutcome(await hapta.call("admin.mail.test", { to: to.trim() }));
    } catch (failure) {
      setOutcome({ sent: false, message: describe(failure) });
    }
    setSending(false);
  };
  return (
    <section>
      <Problem error={settings.error} />
      <Loading when={settings.data} failed={settings.error}>
        <table id="settings">
          <thead><tr><th>setting</th><th>value</th><th>from</th></tr></thead>
          <tbody>
            {settings.data?.settings.map((s) => (
              <tr key={s.name} data-setting={s.name}>
                <td><code>{s.name}</code>{s.secret && <span class="badge warn">secret</span>}</td>
                <td>{s.value === null || s.value === "" ? <span class="muted">not set</span> : <code>{String(s.value)}</code>}</td>
                <td><span class={s.source === "default" ? "badge" : "badge ok"}>{s.source}</span></td>
              </tr>
            ))}
          </tbody>
        </table>
      </Loading>
      <h3>Test mail</h3>
      <form class="inline" id="mail-test" onSubmit={(e) => { e.preventDefault(); send(); }}>
        <input id="mail-to" type="email" required value={to} placeholder="someone@example.com"
               onInput={(e) => setTo(e.currentTarget.value)} />
        <button type="submit" disabled={sending}>{sending ? "Sending…" : "Send a test mail"}</button>
      </form>
      {outcome && <p id="mail-outcome" class={outcome.sent ? "ok" : "error"} data-sent={String(outcome.sent)}>
        {outcome.sent ? "Sent: " : "Not sent: "}{outcome.message}</p>}
    </section>
  );
}
