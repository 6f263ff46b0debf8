"""Command-line options of the locustfile. Each also reads a HARNESS_* environment variable and shows in the
web UI, so `rmqh demo`, `rmqh locust` and a hand-written `locust -f` all configure the load the same way."""
from __future__ import annotations

from typing import Any

from locust import events

from cluster.topology import DEFAULT_TOPIC



@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    # Locust's own parser takes include_in_web_ui on add_argument only, not on argument groups.
    group = parser
    group.add_argument("--namesrv", env_var="HARNESS_NAMESRV", default="",
                       help="NameServer addresses, ';'-separated (default: the running cluster's state file)",
                       include_in_web_ui=True)
    group.add_argument("--state-dir", env_var="HARNESS_STATE_DIR", default="",
                       help="cluster state directory to read NameServer addresses from (default $RMQH_HOME/cluster)")
    group.add_argument("--topic", env_var="HARNESS_TOPIC", default=DEFAULT_TOPIC, include_in_web_ui=True)
    group.add_argument("--message-size", env_var="HARNESS_MESSAGE_SIZE", type=int, default=1024,
                       help="body size in bytes", include_in_web_ui=True)
    group.add_argument("--message-tags", env_var="HARNESS_MESSAGE_TAGS", default="TagA",
                       help="tag of sent messages; consumers subscribe to '*'", include_in_web_ui=True)
    group.add_argument("--message-keys", env_var="HARNESS_MESSAGE_KEYS", default="true", choices=["true", "false"],
                       help="give every message a unique KEYS property", include_in_web_ui=True)
    group.add_argument("--producer-rate", env_var="HARNESS_PRODUCER_RATE", type=float, default=0.0,
                       help="target sends per second per producer user (0 = as fast as acknowledged)",
                       include_in_web_ui=True)
    group.add_argument("--send-window", env_var="HARNESS_SEND_WINDOW", type=int, default=1,
                       help="sends in flight per producer task (>1 pipelines async sends)", include_in_web_ui=True)
    group.add_argument("--consumer-group", env_var="HARNESS_CONSUMER_GROUP", default="rmqh-consumer",
                       include_in_web_ui=True)
    group.add_argument("--consumer-users", env_var="HARNESS_CONSUMER_USERS", type=int, default=1,
                       help="how many of the users are consumers (the rest produce)", include_in_web_ui=True)
    group.add_argument("--consume-from", env_var="HARNESS_CONSUME_FROM", default="last",
                       choices=["last", "first"], help="where a new consumer group starts", include_in_web_ui=True)
