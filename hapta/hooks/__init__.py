"""The app's hooks (rules/<collection>.py): the API they use (api.py), the worker processes that run them
(workers.py, worker.py, messages.py, loader.py), and the service the records ops call (service.py).
docs/rules.md has the whole story. Apps import the API as `hapta.rules`."""
