"""The SSRF guard: which webhook URLs pass, and that every refusal happens before any request.

Names are resolved by a stub standing in for DNS, so no test depends on (or sends to) the
network; `resolve_public` itself never connects anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from service.errors import Unprocessable
from service.webhooks.addresses import (
    CheckedTarget,
    UnresolvableWebhookHost,
    UnsafeWebhookUrl,
    resolve_public,
)

pytestmark = pytest.mark.anyio

NOT_PUBLIC = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.10.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("192.0.0.8", "IETF protocol"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("::ffff:127.0.0.1", "wrapping 127.0.0.1, a loopback"),
    ("::ffff:169.254.169.254", "wrapping 169.254.169.254, the cloud metadata"),
    ("::ffff:10.0.0.1", "wrapping 10.0.0.1, a private"),
    ("::127.0.0.1", "wrapping 127.0.0.1, a loopback"),  # IPv4-compatible
    ("::8.8.8.8", "reserved"),  # IPv4-compatible is deprecated whatever it wraps
    ("64:ff9b::127.0.0.1", "wrapping 127.0.0.1"),  # NAT64
    ("64:ff9b::a9fe:a9fe", "wrapping 169.254.169.254"),
    ("64:ff9b:1::8.8.8.8", "local-use NAT64"),
    ("2002:7f00:1::", "wrapping 127.0.0.1"),  # 6to4
    ("2002:a00:1::1", "wrapping 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "wrapping 127.0.0.1"),  # Teredo (client obfuscated)
    ("2001:2::1", "benchmarking"),
    ("2001:10::1", "reserved"),  # ORCHID
    ("4000::1", "reserved"),  # outside global unicast
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
          "2002:808:808::1"]  # fmt: skip


class StubDns:
    """Answers every name with fixed addresses and remembers what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.addresses


@pytest.mark.parametrize(("address", "why"), NOT_PUBLIC)
async def test_literal_address_that_is_not_public_is_refused(address: str, why: str) -> None:
    host = f"[{address}]" if ":" in address else address
    dns = StubDns()

    with pytest.raises(UnsafeWebhookUrl, match=why):
        await resolve_public(f"https://{host}/hook", allow_private=False, resolve=dns)

    assert dns.asked == []  # a literal is checked as it is, never looked up


@pytest.mark.parametrize(("address", "why"), NOT_PUBLIC)
async def test_name_resolving_to_an_address_that_is_not_public_is_refused(
    address: str, why: str
) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=why) as refused:
        await resolve_public(
            "https://hooks.example.com/hook", allow_private=False, resolve=StubDns(address)
        )

    canonical = ipaddress.ip_address(address)
    assert f"hooks.example.com resolves to {canonical}, which is" in refused.value.reason


async def test_name_with_one_public_and_one_private_address_is_refused() -> None:
    dns = StubDns("93.184.215.14", "10.0.0.7")

    with pytest.raises(UnsafeWebhookUrl, match=r"resolves to 10\.0\.0\.7"):
        await resolve_public("https://hooks.example.com/", allow_private=False, resolve=dns)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal
        "http://0x7f.1/",  # hex, short form
        "http://0x7f000001/",
        "http://017700000001/",  # octal
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://0/",
    ],
)
async def test_legacy_and_wrapped_forms_of_loopback_are_refused(url: str) -> None:
    dns = StubDns("8.8.8.8")  # what a lying resolver would say: the form itself is checked

    with pytest.raises(UnsafeWebhookUrl, match=r"loopback|unspecified"):
        await resolve_public(url, allow_private=False, resolve=dns)

    assert dns.asked == []


async def test_system_resolver_answer_is_checked_too() -> None:
    """`localhost` comes from the machine's own hosts table: no query leaves it."""
    with pytest.raises(UnsafeWebhookUrl, match=r"localhost resolves to .*loopback"):
        await resolve_public("http://localhost:8080/hook", allow_private=False)


@pytest.mark.parametrize("address", PUBLIC)
async def test_public_addresses_pass(address: str) -> None:
    target = await resolve_public(
        "https://hooks.example.com/hook", allow_private=False, resolve=StubDns(address)
    )

    assert target.ips == (str(ipaddress.ip_address(address)),)


async def test_checked_target_keeps_host_port_path_and_every_address() -> None:
    dns = StubDns("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14")

    target = await resolve_public(
        "https://Hooks.Example.COM/burro/hook?tenant=a%20b&x=1#fragment",
        allow_private=False,
        resolve=dns,
    )

    assert target == CheckedTarget(
        scheme="https",
        host="hooks.example.com",
        port=443,
        path_qs="/burro/hook?tenant=a%20b&x=1",
        ips=("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    )
    assert dns.asked == [("hooks.example.com", 443)]
    assert target.url == "https://hooks.example.com:443/burro/hook?tenant=a%20b&x=1"


async def test_default_port_follows_the_scheme_and_an_explicit_one_wins() -> None:
    dns = StubDns("8.8.8.8")

    http = await resolve_public("http://hooks.example.com", allow_private=False, resolve=dns)
    custom = await resolve_public(
        "https://hooks.example.com:8443/", allow_private=False, resolve=dns
    )

    assert (http.port, http.path_qs) == (80, "/")
    assert custom.port == 8443


async def test_international_host_name_is_looked_up_in_its_ascii_form() -> None:
    dns = StubDns("8.8.8.8")

    target = await resolve_public("https://bücher.example/hook", allow_private=False, resolve=dns)

    assert target.host == "xn--bcher-kva.example"
    assert dns.asked == [("xn--bcher-kva.example", 443)]


async def test_literal_ipv6_target_is_bracketed_in_its_url() -> None:
    target = await resolve_public("http://[2606:4700:4700::1111]:8080/x", allow_private=False)

    assert target.host == "2606:4700:4700::1111"
    assert target.url == "http://[2606:4700:4700::1111]:8080/x"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("hooks.example.com/hook", "http or https"),
        ("http:///hook", "name a host|not a valid URL"),
        ("https://user:pass@hooks.example.com/", "user name or password"),
        ("https://token@hooks.example.com/", "user name or password"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com:70000/", "not a valid URL"),
        ("https://hooks example.com/", "characters"),
        ("https://hooks..example.com/", "empty label"),
        ("https://evil.example\\@127.0.0.1/", "not a valid URL"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("", "http or https"),
    ],
)
async def test_malformed_url_is_refused_before_any_lookup(url: str, why: str) -> None:
    dns = StubDns("8.8.8.8")

    with pytest.raises(UnsafeWebhookUrl, match=why):
        await resolve_public(url, allow_private=True, resolve=dns)

    assert dns.asked == []


async def test_allow_private_lets_loopback_through() -> None:
    literal = await resolve_public("http://127.0.0.1:9000/hook", allow_private=True)
    named = await resolve_public("http://localhost:9000/hook", allow_private=True)

    assert literal.ips == ("127.0.0.1",)
    assert "127.0.0.1" in named.ips or "::1" in named.ips


async def test_legacy_numeric_host_is_checked_in_its_canonical_form() -> None:
    target = await resolve_public("http://0x7f.1:9000/", allow_private=True)

    assert (target.host, target.ips) == ("127.0.0.1", ("127.0.0.1",))


async def test_name_that_does_not_resolve_is_unresolvable() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnresolvableWebhookHost, match="does not resolve"):
        await resolve_public("https://nowhere.example/", allow_private=False, resolve=nxdomain)


async def test_slow_resolver_is_cut_off() -> None:
    async def never(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        return []

    with pytest.raises(UnresolvableWebhookHost, match=r"did not resolve within 0\.05 s"):
        await resolve_public(
            "https://slow.example/", allow_private=False, resolve=never, resolve_timeout=0.05
        )


async def test_resolver_without_answers_is_unresolvable() -> None:
    with pytest.raises(UnresolvableWebhookHost, match="no address"):
        await resolve_public("https://empty.example/", allow_private=False, resolve=StubDns())


async def test_resolver_answer_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not an IP address"):
        await resolve_public(
            "https://odd.example/", allow_private=True, resolve=StubDns("not-an-ip")
        )


def test_refusal_is_a_422_with_its_own_code() -> None:
    error = UnsafeWebhookUrl("webhook URL must use http or https")

    assert isinstance(error, Unprocessable)
    assert (error.status_code, error.code) == (422, "unsafe_webhook_url")
    assert error.detail == error.reason == "webhook URL must use http or https"
