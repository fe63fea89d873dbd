"""The one error of backup and restore: its message is the whole line the command prints."""


class BackupError(Exception):
    pass
