"""Hooks for likes: keep posts.likes counting them."""


async def after_create(ctx, record):
    await ctx.sql("UPDATE posts SET likes = likes + 1 WHERE id = $1", record["post"])


async def after_delete(ctx, record):
    await ctx.sql("UPDATE posts SET likes = likes - 1 WHERE id = $1", record["post"])
