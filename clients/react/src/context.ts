// The client the hooks use: one connected Hapta, handed down by <HaptaProvider client={hapta}>.
import type { Hapta } from "@hapta/client";
import type { ReactElement, ReactNode } from "react";
import { createContext, createElement, useContext } from "react";

const HaptaContext = createContext<Hapta | null>(null);

export interface HaptaProviderProps {
  /** A connected client (`await Hapta.connect(url, options)`): the hooks below use it, and never close it. */
  client: Hapta;
  children?: ReactNode;
}

/** Makes `client` the one the hooks below it use. */
export function HaptaProvider({ client, children }: HaptaProviderProps): ReactElement {
  return createElement(HaptaContext.Provider, { value: client }, children);
}

/** The client of the nearest HaptaProvider (for what the hooks do not cover: `useHapta().files.upload(...)`). */
export function useHapta(): Hapta {
  const client = useContext(HaptaContext);
  if (!client) throw new Error("@hapta/react: a hook was used outside <HaptaProvider client={hapta}>");
  return client;
}
