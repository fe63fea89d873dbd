// useMutation: writes (create, update, delete) with their status and error as React state, for a form's button and
// the message under it.
import type { FilesOptions, HaptaError, WriteOptions } from "@hapta/client";
import { useEffect, useMemo, useRef, useState } from "react";
import { useHapta } from "./context.js";

export type MutationStatus = "idle" | "pending" | "success" | "error";

export interface MutationResult {
  /** Creates a record of `collection`; resolves to it, or to undefined when refused (then `error` says why).
   * `files: {media: [file]}` stores files with it in one step (`onProgress(sent, total)` hears their bytes). */
  create: <T = Record<string, unknown>>(collection: string, data: Partial<T>,
                                         options?: WriteOptions & FilesOptions) => Promise<T | undefined>;
  /** Updates fields of a record; `version`: only if it is still at that version (else CONFLICT); `files` adds
   * files to those it keeps. */
  update: <T = Record<string, unknown>>(collection: string, id: string, data: Partial<T>,
                     options?: { version?: number } & WriteOptions & FilesOptions) => Promise<T | undefined>;
  delete: (collection: string, id: string, options?: WriteOptions) => Promise<{ id: string } | undefined>;
  /** The last write's: "idle" before any, "pending" while it is on its way, "success" or "error". */
  status: MutationStatus;
  /** Why the last write was refused (`error.code`: RULE_DENIED, FORBIDDEN, RATE_LIMITED, ...). */
  error: HaptaError | null;
  /** Back to "idle", the error forgotten. */
  reset: () => void;
}

interface MutationState {
  status: MutationStatus;
  error: HaptaError | null;
}

const IDLE: MutationState = { status: "idle", error: null };

/** Writes through the client, each call's outcome in `status` and `error` (the last call's, when several overlap).
 * The functions never reject: a refusal resolves to undefined and is `error`. */
export function useMutation(): MutationResult {
  const client = useHapta();
  const [state, setState] = useState<MutationState>(IDLE);
  const latest = useRef(0);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => { mounted.current = false; };
  }, []);
  const writes = useMemo(() => {
    async function run<R>(write: () => Promise<R>): Promise<R | undefined> {
      const call = ++latest.current;
      setState({ status: "pending", error: null });
      const current = () => mounted.current && call === latest.current;
      try {
        const done = await write();
        if (current()) setState({ status: "success", error: null });
        return done;
      } catch (error) {
        if (current()) setState({ status: "error", error: error as HaptaError });
        return undefined;
      }
    }
    return {
      create: <T = Record<string, unknown>>(collection: string, data: Partial<T>,
                                             options?: WriteOptions & FilesOptions) =>
        run(() => client.records<T>(collection).create(data, options)),
      update: <T = Record<string, unknown>>(collection: string, id: string, data: Partial<T>,
                         options?: { version?: number } & WriteOptions & FilesOptions) =>
        run(() => client.records<T>(collection).update(id, data, options)),
      delete: (collection: string, id: string, options?: WriteOptions) =>
        run(() => client.records(collection).delete(id, options)),
      reset: () => {
        latest.current++;
        setState(IDLE);
      },
    };
  }, [client]);
  return { ...writes, status: state.status, error: state.error };
}
