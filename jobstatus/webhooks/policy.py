"""Where a delivery may connect: public addresses, and what the ``allow`` list adds.

A delivery never connects to a loopback, private, link-local, shared (carrier-grade NAT),
multicast, reserved, documentation or unspecified address -- cloud metadata services live at
some of these (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``) -- unless the
``allow`` list names the host, the address, or a network holding it. IPv6 addresses that embed
an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, 6to4, NAT64) are judged by the
IPv4 address they reach.

The check is made on the resolved addresses at connect time, and the connection is made to the
very address that was checked (:meth:`AddressPolicy.resolve`), so a name that resolves to a
public address when checked and to a private one a moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AddressPolicy", "AddressRefused", "refusal_of"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``socket.getaddrinfo``'s signature, as far as :class:`AddressPolicy` uses it.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), label)
    for network, label in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved (benchmarking)"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (and broadcast)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("100::/64", "reserved (discard)"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "private (unique local; cloud metadata)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved (site-local)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def refusal_of(address: IPAddress) -> str | None:
    """Why a delivery must not connect to ``address`` unless allowed ("loopback",
    "private", ...), or None for a public address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        why = refusal_of(embedded)
        return None if why is None else f"{why} (as {address}, which reaches {embedded})"
    for network, label in _REFUSED:
        if address.version == network.version and address in network:
            return label
    if address.is_multicast:
        return "multicast"
    if address.is_reserved or address.is_unspecified:
        return "reserved"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class AddressRefused(Exception):
    """A delivery's host resolves to no address it may connect to; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AddressPolicy:
    """The addresses deliveries may reach: every public one, plus what ``allow`` names.

    Build it with :meth:`from_allow`. ``resolver`` is :func:`socket.getaddrinfo` unless a test
    gives another.
    """

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=socket.getaddrinfo, repr=False, compare=False)

    @classmethod
    def from_allow(cls, allow: Iterable[str], *, resolver: Resolver | None = None) -> AddressPolicy:
        """A policy from ``allow``: host names (``hooks.internal``), addresses
        (``127.0.0.1``, ``::1``) and networks (``10.0.0.0/8``). :class:`ValueError` for an
        entry that is none of these."""
        if isinstance(allow, str):
            raise ValueError("allow takes a collection of hosts, addresses and networks")
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allow:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"an allow entry must be a non-empty string, got {entry!r}")
            text = entry.strip()
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = text.lower().rstrip(".")
            if (
                "/" in name
                or ":" in name
                or not all(
                    label and label.replace("-", "").replace("_", "").isalnum()
                    for label in name.split(".")
                )
            ):
                raise ValueError(
                    f"allow entry {entry!r} is not a host name, an address or a network"
                )
            names.add(name)
        if resolver is None:
            return cls(frozenset(names), tuple(networks))
        return cls(frozenset(names), tuple(networks), resolver)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why ``host`` must not be reached at ``address``, or None when it may."""
        if host.lower().rstrip(".") in self.names:
            return None
        embedded = _embedded_ipv4(address)
        if any(
            address in network or (embedded is not None and embedded in network)
            for network in self.networks
        ):
            return None
        why = refusal_of(address)
        if why is None:
            return None
        return f"{address} is {why}; list it in Webhooks(allow=...) to deliver there"

    def resolve(self, host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        """The (family, socket address) pairs ``host`` may be reached at, in the resolver's
        order; :class:`AddressRefused` when there is none (the reason names the first
        refused address), or when the name does not resolve."""
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise AddressRefused(f"cannot resolve {host}: {exc}") from exc
        allowed: list[tuple[int, tuple[Any, ...]]] = []
        refused: list[str] = []
        for family, _type, _proto, _name, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            why = self.refusal(host, address)
            if why is None:
                allowed.append((family, tuple(sockaddr)))
            else:
                refused.append(why)
        if not allowed:
            raise AddressRefused(refused[0] if refused else f"{host} has no IP address")
        return allowed
