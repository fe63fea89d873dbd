"""The app's hooks (rules/<collection>.py): the API they use (api.py), the hooks' side of a worker process
(child.py: importing rules/, running one hook) and the service the records ops call (service.py: Hooks, and
HOOK_WORKERS, the kind of hapta.workers pool that runs them). docs/rules.md has the whole story. Apps import the API
as `hapta.rules`."""
