"""An after hook for the rules tests: count the records created, per text; "raise" makes it fail."""


async def after_create(ctx, record):
    if record["text"] == "raise":
        raise RuntimeError("a bug in an after hook")
    await ctx.sql("INSERT INTO tallies (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = tallies.n + 1",
                  record["text"])
