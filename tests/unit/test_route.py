"""Route and cluster-info parsing as real NameServers send them, and the queue choices made from routes."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from harness.remoting.route import (BrokerData, MessageQueue, NoRouteError, QueueSelector, parse_cluster_info,
                                    parse_topic_route)

# A 4.8-era NameServer answering an old-version request: bare numeric keys and the topicSynFlag spelling.
BARE_KEY_ROUTE = (b'{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"b",'
                  b'"cluster":"c"},{"brokerAddrs":{0:"10.0.0.3:10911"},"brokerName":"a","cluster":"c"}],'
                  b'"filterServerTable":{},"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":2,'
                  b'"topicSynFlag":0,"writeQueueNums":2},{"brokerName":"a","perm":6,"readQueueNums":3,'
                  b'"topicSynFlag":1,"writeQueueNums":3}]}')


def route_body(queue_datas: list[dict], broker_datas: list[dict], **extra: object) -> bytes:
    return json.dumps({"queueDatas": queue_datas, "brokerDatas": broker_datas, **extra}).encode()


def qd(name: str, read: int = 4, write: int = 4, perm: int = 6) -> dict:
    return {"brokerName": name, "readQueueNums": read, "writeQueueNums": write, "perm": perm, "topicSysFlag": 0}


def bd(name: str, addrs: dict[int, str]) -> dict:
    return {"cluster": "DefaultCluster", "brokerName": name, "brokerAddrs": {str(k): v for k, v in addrs.items()}}


def test_bare_numeric_keys_and_topic_syn_flag_are_parsed() -> None:
    route = parse_topic_route("T", BARE_KEY_ROUTE)
    assert route.brokers["b"].broker_addrs == {0: "10.0.0.1:10911", 1: "10.0.0.2:10911"}
    assert [q.topic_sys_flag for q in route.queue_datas] == [0, 1]
    assert route.master_addr("a") == "10.0.0.3:10911"


def test_publish_queues_are_sorted_by_broker_name_and_skip_groups_without_master_or_write_perm() -> None:
    body = route_body([qd("c", write=2), qd("a", write=2), qd("b", write=2), qd("d", perm=4)],
                      [bd("a", {0: "A0"}), bd("b", {1: "B1", 3: "B3"}), bd("c", {0: "C0"}), bd("d", {0: "D0"})])
    route = parse_topic_route("T", body)
    assert route.publish_queues() == [MessageQueue("T", "a", 0), MessageQueue("T", "a", 1),
                                      MessageQueue("T", "c", 0), MessageQueue("T", "c", 1)]
    with pytest.raises(NoRouteError):
        route.master_addr("b")  # a DLedger group between leaders: ids {1, 3}, no 0


def test_subscribe_queues_use_read_counts_and_read_perm_and_sort() -> None:
    body = route_body([qd("b", read=2, write=1), qd("a", read=1, perm=2), qd("c", read=1, perm=4)],
                      [bd("a", {0: "A"}), bd("b", {1: "B"}), bd("c", {0: "C"})])
    assert parse_topic_route("T", body).subscribe_queues() == [
        MessageQueue("T", "b", 0), MessageQueue("T", "b", 1), MessageQueue("T", "c", 0)]


def test_order_topic_conf_overrides_the_queue_list() -> None:
    body = route_body([qd("a")], [bd("a", {0: "A"})], orderTopicConf="a:2;b:1")
    assert parse_topic_route("T", body).publish_queues() == [
        MessageQueue("T", "a", 0), MessageQueue("T", "a", 1), MessageQueue("T", "b", 0)]


def test_tbw102_fallback_uses_at_most_four_queues_per_broker() -> None:
    tbw = parse_topic_route("TBW102", route_body([qd("a", 8, 8, perm=7), qd("b", 2, 2, perm=7)],
                                                 [bd("a", {0: "A"}), bd("b", {0: "B"})]))
    route = tbw.for_new_topic("NewTopic")
    assert route.from_default_topic
    assert Counter(q.broker_name for q in route.publish_queues()) == {"a": 4, "b": 2}
    assert {q.topic for q in route.publish_queues()} == {"NewTopic"}


def test_selector_round_robins_and_a_retry_avoids_the_failed_broker() -> None:
    route = parse_topic_route("T", route_body([qd("a", write=2), qd("b", write=2)],
                                              [bd("a", {0: "A"}), bd("b", {0: "B"})]))
    selector = QueueSelector(route)
    picks = [selector.select() for _ in range(8)]
    assert Counter(picks) == {q: 2 for q in route.publish_queues()}
    assert all(selector.select(avoid_broker="a").broker_name == "b" for _ in range(10))


def test_selector_falls_back_to_the_only_broker_and_fails_without_queues() -> None:
    one = parse_topic_route("T", route_body([qd("a", write=1)], [bd("a", {0: "A"})]))
    assert QueueSelector(one).select(avoid_broker="a") == MessageQueue("T", "a", 0)
    none = parse_topic_route("T", route_body([qd("a")], [bd("a", {1: "A1"})]))
    with pytest.raises(NoRouteError):
        QueueSelector(none).select()


@pytest.mark.parametrize(("addrs", "suggested", "expected"), [
    ({0: "M", 1: "S1"}, 1, ("S1", 1)),
    ({0: "M", 1: "S1"}, 0, ("M", 0)),
    ({0: "M", 2: "S2", 3: "S3"}, 1, ("S2", 2)),     # id missing: id + 1
    ({0: "M", 3: "S3"}, 1, ("M", 0)),               # neither: any address, master first
    ({1: "S1", 3: "S3"}, 0, ("S1", 1)),             # no master: 0 missing, 0+1 present
    ({2: "S2", 3: "S3"}, 0, ("S2", 2)),             # no master, no id 1: the lowest id
])
def test_pull_address_follows_the_suggestion_with_the_java_fallbacks(addrs: dict[int, str], suggested: int,
                                                                      expected: tuple[str, int]) -> None:
    assert BrokerData("c", "b", addrs).addr_for_pull(suggested) == expected


def test_empty_broker_has_no_pull_or_select_address() -> None:
    assert BrokerData("c", "b", {}).addr_for_pull(0) is None
    assert BrokerData("c", "b", {}).select_addr() is None


def test_cluster_info_with_bare_keys_gives_masters_per_cluster() -> None:
    body = (b'{"brokerAddrTable":{"a":{"brokerAddrs":{0:"A0",1:"A1"},"brokerName":"a","cluster":"c1"},'
            b'"b":{"brokerAddrs":{2:"B2"},"brokerName":"b","cluster":"c1"},'
            b'"x":{"brokerAddrs":{0:"X0"},"brokerName":"x","cluster":"c2"}},'
            b'"clusterAddrTable":{"c1":["a","b"],"c2":["x"]}}')
    info = parse_cluster_info(body)
    assert info.brokers["a"].broker_addrs == {0: "A0", 1: "A1"}
    assert info.clusters == {"c1": ("a", "b"), "c2": ("x",)}
    assert info.masters("c1") == {"a": "A0"}
    assert info.masters() == {"a": "A0", "x": "X0"}
    assert info.masters("nope") == {}


def test_empty_bodies_parse_to_empty_structures() -> None:
    assert parse_topic_route("T", b"").publish_queues() == []
    assert parse_cluster_info(b"").masters() == {}
