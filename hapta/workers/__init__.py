"""Worker processes that run the app's own code beside the gateway, never in it: rules/ hooks (hapta.hooks) and
functions/ (hapta.functions) each run on a pool of their own, built from the same parts and told apart by a `Kind`.

    kind.py      Kind: what sets one kind of pool apart (the child side it imports, its environment, its memory, how
                 callers share it, its names in logs and metrics)
    pool.py      WorkerPool, the gateway's side: start the workers, hand out calls, keep deadlines, replace the dead
    child.py     the worker process: confine it, import the kind's child side by name, run calls one at a time
    messages.py  what gateway and worker say to each other over their socket pair
    loading.py   LoadError (a folder that does not load), and the one-line account of why
    reload.py    --reload: a look at a folder's files twice a second, and a new generation of workers on a change
    api.py       what app code in any worker shares: Deny, SqlError (apps import them from hapta.rules, hapta.functions)

Nothing here knows hooks or functions: a kind's child side is imported by its module path in the worker
(`Kind.program`), and its gateway side builds a Kind and reads the pool's `table`. docs/rules.md and
docs/functions.md have the whole story.
"""
