"""How much of something each principal and each address holds at once, against a cap per kind of key: the
subscriptions of one user across their connections, the filter bytes of one address. Pure bookkeeping; a key
that holds nothing costs no memory."""
from __future__ import annotations


class Quota:
    def __init__(self, caps: dict[str, int]):
        self.caps = caps                  # key kind ("user", "addr": the prefix of principal_key) -> most held
        self.held: dict[str, int] = {}

    def take(self, keys: tuple[str, ...], amount: int = 1) -> str | None:
        """Count `amount` against every key, or nothing: the kind of the first key that has no room for it."""
        for key in keys:
            cap = self.caps.get(key.split(":", 1)[0])
            if cap is not None and self.held.get(key, 0) + amount > cap:
                return key.split(":", 1)[0]
        for key in keys:
            self.held[key] = self.held.get(key, 0) + amount
        return None

    def give(self, keys: tuple[str, ...], amount: int = 1) -> None:
        for key in keys:
            left = self.held.get(key, 0) - amount
            if left > 0:
                self.held[key] = left
            else:
                self.held.pop(key, None)

    def cap(self, kind: str) -> int | None:
        return self.caps.get(kind)
