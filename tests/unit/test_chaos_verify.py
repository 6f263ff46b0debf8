"""Classifying accepted connections: through the node's own proxy, through another node's, or around."""
from __future__ import annotations

from chaos.verify import Accepted, Misrouted, classify
from harness.state import LinkState

LINKS = {"clients->ns-0": LinkState("clients->ns-0", "client", "clients", "ns-0", "127.0.0.1:4000", "127.0.0.1:9000"),
         "broker-a-0->ns-0": LinkState("broker-a-0->ns-0", "ns-link", "broker-a-0", "ns-0", "127.0.0.1:4001",
                                       "127.0.0.1:9000"),
         "clients->broker-a-0": LinkState("clients->broker-a-0", "client", "clients", "broker-a-0",
                                          "127.0.0.1:4002", "127.0.0.1:9100")}


def test_each_accepted_connection_is_proxied_misrouted_or_a_bypass() -> None:
    accepted = [Accepted("ns-0", 9000, "127.0.0.1:50001"), Accepted("ns-0", 9000, "127.0.0.1:50002"),
                Accepted("ns-0", 9000, "127.0.0.1:50003"), Accepted("broker-a-0", 9100, "127.0.0.1:50004")]
    sources = {"127.0.0.1:50001": "clients->ns-0", "127.0.0.1:50002": "broker-a-0->ns-0",
               "127.0.0.1:50004": "clients->ns-0"}
    proxied, bypasses, misrouted = classify(accepted, sources, LINKS)
    assert proxied == {"ns-0": 2}
    assert bypasses == [Accepted("ns-0", 9000, "127.0.0.1:50003")]
    assert misrouted == [Misrouted(Accepted("broker-a-0", 9100, "127.0.0.1:50004"), "clients->ns-0")]


def test_nothing_accepted_is_clean() -> None:
    assert classify([], {}, LINKS) == ({}, [], [])
