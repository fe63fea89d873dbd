"""Which address a client really has: the socket's peer, unless that peer is a trusted reverse proxy.

Rate limits and connection caps key on this address, so believing `X-Forwarded-For` from anyone would let a client
pick a fresh address per request. It is believed only from the proxies the operator lists (off by default), and
read from the right: the last hop a trusted proxy did not add is the client.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str | None:
    if peer is None or not trusted or not forwarded_for:
        return peer
    nets = networks(trusted)
    if not _trusted(peer, nets):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer   # a garbled header is not evidence of anything: keep what the socket says
        if not _trusted(hop, nets):
            return hop
    return hops[0] if hops else peer
