// The backups (HAPTA_DATA_DIR/backups, and the app's S3 under backups/): start one, download one (a file stream over
// the socket, or a presigned link for S3), delete one, restore one where the gateway allows it (the name typed
// again), and when a scheduled backup function runs next. Every action lands in the admin log.
import { useState } from "preact/hooks";
import { describe } from "../gateway.ts";
import { useCall, useHapta } from "../hooks.ts";
import { bytes, Loading, Problem, when } from "../ui.tsx";

interface Backup { name: string; where: "local" | "s3"; size: number | null; created: number | null; error?: string }
interface Job { target?: string; name?: string; state: "running" | "done" | "failed"; message: string | null;
                started: number; ended?: number }
interface Listed { backups: Backup[]; folder: string; s3: string | null; running: string | null;
                   scheduled: { function: string; every: string; next: number }[]; last_backup: Job | null;
                   last_restore: Job | null; restore_allowed: boolean }

export function Backups() {
  const hapta = useHapta();
  const listed = useCall((h) => h.call<Listed>("admin.backups"), [], 2000);
  const [target, setTarget] = useState("");
  const [said, setSaid] = useState<string | null>(null);
  const [restoring, setRestoring] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);

  const act = async (what: () => Promise<string>) => {
    try {
      setSaid(await what());
    } catch (failure) {
      setSaid(describe(failure));
    }
    listed.reload();
  };
  const start = () => act(async () => {
    const { target: where } = await hapta.call<{ target: string }>("admin.backup", target.trim() ? { target: target.trim() } : {});
    setTarget("");
    return `backup started: ${where}`;
  });
  const download = (backup: Backup) => act(async () => {
    const link = document.createElement("a");
    if (backup.where === "s3") {
      link.href = (await hapta.call<{ url: string }>("admin.backup.download", { name: backup.name })).url;
    } else {
      // the bytes come over the socket as files.download's do; the admin's own browser saves them
      const data = await hapta.files.streamed("admin.backup.download", { name: backup.name });
      link.href = URL.createObjectURL(new Blob([data as BlobPart], { type: "application/x-tar" }));
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    }
    link.download = backup.name.split("/").pop()!;
    link.click();
    return `downloaded ${backup.name}`;
  });
  const remove = (name: string) => act(async () => {
    setDeleting(null);
    await hapta.call("admin.backup.delete", { name });
    return `deleted ${name}`;
  });

  const data = listed.data;
  return (
    <section>
      <form class="inline" id="backup-start" onSubmit={(e) => { e.preventDefault(); start(); }}>
        <input id="backup-target" value={target} placeholder="name (default hapta-backup-<UTC time>.tar)"
               onInput={(e) => setTarget(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled={!!data?.running}>Start a backup</button>
      </form>
      {said && <p role="status" id="backups-said">{said}</p>}
      <Problem error={listed.error} />
      <Loading when={data} failed={listed.error}>
        {data && <>
          <Jobs data={data} />
          <table id="backups">
            <thead><tr><th>backup</th><th>where</th><th>size</th><th>made</th><th></th></tr></thead>
            <tbody>
              {data.backups.map((b) => (
                <tr key={b.name} data-backup={b.name}>
                  <td><code>{b.name}</code>{b.error && <div class="error">{b.error}</div>}</td>
                  <td>{b.where}</td><td>{b.size === null ? "—" : bytes(b.size)}</td><td>{when(b.created)}</td>
                  <td>{!b.error && <div class="actions">
                    <button class="download" onClick={() => download(b)}>Download</button>
                    {deleting === b.name ? (
                      <span class="confirm">Delete it?
                        <button class="danger really" onClick={() => remove(b.name)}>Delete</button>
                        <button onClick={() => setDeleting(null)}>Keep</button></span>
                    ) : <button class="danger delete" onClick={() => setDeleting(b.name)}>Delete…</button>}
                    {data.restore_allowed && <button class="danger restore" onClick={() => setRestoring(b.name)}>
                      Restore…</button>}
                  </div>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.backups.length === 0 && <p class="muted">No backups yet.</p>}
          <p class="muted">Kept in <code>{data.folder}</code>{data.s3 && <> and <code>{data.s3}</code></>}.
            {data.restore_allowed ? " Restore replaces this app's database and local files."
              : " Restore is off here (production without HAPTA_ALLOW_RESTORE): use `hapta restore`."}</p>
          {restoring && <Restore name={restoring} onDone={(text) => { setRestoring(null); if (text) setSaid(text); listed.reload(); }} />}
        </>}
      </Loading>
    </section>
  );
}

function Jobs({ data }: { data: Listed }) {
  const job = (label: string, j: Job | null) => j && (
    <p class={j.state === "failed" ? "error" : undefined} data-job={label}>
      {label} {j.target ?? j.name}: <b>{j.state}</b>{j.message ? ` — ${j.message}` : ""}
    </p>
  );
  return (
    <div class="panel" id="backup-jobs">
      {data.scheduled.length === 0
        ? <p class="muted" id="next-backup">No scheduled backup: an @every function named or filed as *backup*
            calling ctx.backup() shows here (docs/operations.md).</p>
        : data.scheduled.map((s) => (
            <p key={s.function + s.every} id="next-backup">Next scheduled backup: <b>{when(s.next)}</b> ({s.function},
              every <code>{s.every}</code>)</p>))}
      {job("backup", data.last_backup)}
      {job("restore", data.last_restore)}
    </div>
  );
}

/** Restore asks for the backup's name typed again: it replaces everything. */
function Restore({ name, onDone }: { name: string; onDone: (said: string | null) => void }) {
  const hapta = useHapta();
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const go = async () => {
    try {
      await hapta.call("admin.backup.restore", { name, confirm: typed });
      onDone(`restore of ${name} started`);
    } catch (failure) {
      setError(describe(failure));
    }
  };
  return (
    <form class="panel" id="restore" onSubmit={(e) => { e.preventDefault(); go(); }}>
      <p class="error">Restoring <code>{name}</code> replaces this app's whole database and local files with the
        backup's. Connected clients keep running against the result; restart the gateway afterwards.</p>
      <label>Type the backup's name to confirm: <input id="restore-confirm" value={typed}
        onInput={(e) => setTyped(e.currentTarget.value)} /></label>
      <div class="actions">
        <button type="submit" class="danger" disabled={typed !== name}>Restore</button>
        <button type="button" onClick={() => onDone(null)}>Cancel</button>
      </div>
      <Problem error={error} />
    </form>
  );
}
