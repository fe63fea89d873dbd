// The app: an account form until someone is signed in; then who is online, a composer and the live feed, with a
// banner while the connection is away. Every list on screen is a live query that the gateway keeps current.
import { useConnectionState, useSession } from "@hapta/react";
import { Account, SignOut } from "./Account.jsx";
import { Compose, Feed } from "./Feed.jsx";
import { Online } from "./Online.jsx";

export function App() {
  const session = useSession();
  return (
    <main>
      <header>
        <h1>Feed</h1>
        {session && <Online />}
        {session && <SignOut name={session.user.username} />}
      </header>
      <OfflineBanner />
      {session ? <><Compose me={session.user.id} /><Feed me={session.user.id} /></> : <Account />}
    </main>
  );
}

/** Shown while the socket is away: what is on screen stays, and comes up to date by itself when it is back. */
function OfflineBanner() {
  const state = useConnectionState();
  if (state === "open") return null;
  return (
    <p className="banner offline" role="status">
      {state === "closed" ? "Disconnected. Reload the page to connect again." : "Offline: reconnecting…"}
    </p>
  );
}
