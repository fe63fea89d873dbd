"""A server function for the dashboard's end-to-end test: it runs on every new message, logs, and fails on one the
test marks undeliverable, so that the Workers & functions page has runs of each outcome and a dead letter."""
from hapta.functions import on


@on("messages", "create")
async def deliver(ctx, change):
    message = change["record"]
    if message is None:
        return
    ctx.log.info("delivering message %s to %s", message["id"], message["recipient"])
    if "undeliverable" in message["text"]:
        raise RuntimeError("the recipient's inbox is closed")
