"""The demo app's server functions (docs/functions.md): a live notice when a message arrives, and an hourly
clean-up of old messages."""
from hapta.functions import every, on

KEEP_DAYS = 365


@on("messages", "create")
async def notify_recipient(ctx, change):
    """Tell the recipient, on their private channel (config.py: "user:*" is for part1 = @user.id), that a message
    came in: whichever device of theirs has joined user:<id> hears it, wherever it is connected."""
    message = change["record"]
    if message is None:   # deleted before we ran
        return
    await ctx.publish(f"user:{message['recipient']}", {"kind": "message", "id": message["id"],
                                                       "from": message["sender"]})


@every("0 * * * *")
async def forget_old_messages(ctx, tick):
    """Once an hour, across every node: messages older than KEEP_DAYS days are removed."""
    removed = await ctx.sql("DELETE FROM messages WHERE created < now() - make_interval(days => $1) RETURNING id",
                            KEEP_DAYS)
    ctx.log.info("removed %d messages older than %d days", len(removed), KEEP_DAYS)
