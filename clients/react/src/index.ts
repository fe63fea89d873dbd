// @hapta/react: React hooks on @hapta/client. Suspense-free: every hook answers at once with a `status`, and what
// it holds open on the gateway (a live query, a channel membership) starts when the component mounts and ends
// when it unmounts.
//
//   const hapta = await Hapta.connect("wss://api.example.com/ws", { storage: localStorage });
//   createRoot(root).render(<HaptaProvider client={hapta}><App /></HaptaProvider>);
//
//   function Feed() {
//     const { items, status } = useQuery<Post>("posts", { filter: "public = true", sort: "-created", limit: 50 });
//     if (status === "loading") return <p>Loading</p>;
//     return <ul>{items.map((post) => <li key={post.id}>{post.text}</li>)}</ul>;
//   }
//
// README.md says what each hook answers; "How it is built" there, how the modules divide the work.
export { HaptaProvider, useHapta, type HaptaProviderProps } from "./context.js";
export { pendingOf, queryKey, queryOptions, recordOptions, useQuery, useRecord, type QueryResult, type QueryStatus,
         type RecordResult, type UseQueryOptions } from "./queries.js";
export { useConnectionState, useSession } from "./session.js";
export { keepLast, useChannel, type ChannelMessage, type ChannelResult, type ChannelStatus } from "./channels.js";
export { useMutation, type MutationResult, type MutationStatus } from "./mutations.js";
