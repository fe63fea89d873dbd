// Who is online: the demo's "online" channel, whose members carry their username (a presence field of the users
// record, as the rules show it to each reader).
import { useChannel } from "@hapta/react";

export function Online() {
  const { members, status } = useChannel("online");
  if (status !== "joined") return null;
  const names = [...new Set(members.map((member) => member.profile?.username ?? "someone"))];
  return <p className="online" title={names.join(", ")}>{names.length} online: {names.slice(0, 5).join(", ")}</p>;
}
