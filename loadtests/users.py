"""Locust users that produce to and consume from a RocketMQ-protocol cluster.

Every send fires a ``SEND`` request event (send latency), every pull a ``PULL`` event (pull round trip,
long-poll hold included), and every consumed message a ``CONSUME`` event whose response time is the
end-to-end latency from the message's born timestamp. All go through ``environment.events.request``, the
one measurement path Locust's stats, CSVs and the harness report read.
"""
from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from locust import User, constant_throughput, events, task

from harness.errors import ConfigError
from harness.remoting.consumer import PullConsumer
from harness.remoting.mq import Message, MQClient, SendResult
from harness.state import default_state_dir, load_state

_SEQ = itertools.count()


def namesrv_addrs(options: Any) -> list[str]:
    """From --namesrv, else from the running cluster's state file."""
    if getattr(options, "namesrv", ""):
        return [a.strip() for a in options.namesrv.replace(",", ";").split(";") if a.strip()]
    state_dir = Path(options.state_dir) if getattr(options, "state_dir", "") else default_state_dir()
    addrs = load_state(state_dir).namesrv_addrs
    if not addrs:
        raise ConfigError(f"the cluster state in {state_dir} lists no NameServer")
    return addrs


class RocketMQUser(User):
    """Shared settings; subclasses do the work."""

    abstract = True

    def fire(self, request_type: str, name: str, started: float, length: int,
             exception: BaseException | None, response_time: float | None = None, **context: Any) -> None:
        elapsed = response_time if response_time is not None else (time.perf_counter() - started) * 1000
        self.environment.events.request.fire(request_type=request_type, name=name, response_time=elapsed,
                                             response_length=length, exception=exception, context=context)


class ProducerUser(RocketMQUser):
    """Sends messages of --message-size bytes to --topic; --send-window > 1 pipelines async sends."""

    _client: MQClient | None = None  # one client per Locust process, shared by every producer user

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.topic: str = opts.topic
        self.tags: str = opts.message_tags
        self.unique_keys = opts.message_keys == "true"
        self.window = max(1, opts.send_window)
        self.body_filler = os.urandom(max(0, opts.message_size))
        if opts.producer_rate > 0:
            self.wait_time = constant_throughput(opts.producer_rate / self.window)

    def wait_time(self) -> float:  # replaced per instance when a rate is set
        return 0.0

    @classmethod
    def client(cls, environment: Any) -> MQClient:
        if cls._client is None:
            opts = environment.parsed_options
            cls._client = MQClient(namesrv_addrs(opts), producer_group="rmqh-producer")
            cls._client.start()
        return cls._client

    def message(self) -> Message:
        seq = next(_SEQ)
        keys = (f"{os.getpid()}-{id(self):x}-{seq}",) if self.unique_keys else ()
        return Message(topic=self.topic, body=self.body_filler, tags=self.tags, keys=keys)

    @task
    def send(self) -> None:
        if self.window == 1:
            self._send_one()
        else:
            self._send_window()

    def _send_one(self) -> None:
        msg = self.message()
        started = time.perf_counter()
        try:
            result = self.client(self.environment).send(msg)
        except Exception as exc:
            self.fire("SEND", self.topic, started, len(msg.body), exc)
            return
        self.fire("SEND", self.topic, started, len(msg.body), _degraded(result), status=result.status,
                  msg_id=result.msg_id, queue=result.queue.queue_id, broker=result.queue.broker_name)

    def _send_window(self) -> None:
        client = self.client(self.environment)
        pending: list[tuple[Future[SendResult], float, int]] = []
        for _ in range(self.window):
            msg = self.message()
            started = time.perf_counter()
            try:
                pending.append((client.send_async(msg), started, len(msg.body)))
            except Exception as exc:
                self.fire("SEND", self.topic, started, len(msg.body), exc)
        for future, started, length in pending:
            try:
                result = future.result()
            except Exception as exc:
                self.fire("SEND", self.topic, started, length, exc)
                continue
            self.fire("SEND", self.topic, started, length, _degraded(result), status=result.status,
                      msg_id=result.msg_id)


def _degraded(result: SendResult) -> BaseException | None:
    """A stored-but-degraded send (FLUSH_*_TIMEOUT, SLAVE_NOT_AVAILABLE) counts as a failure in Locust."""
    return None if result.status == "SEND_OK" else RuntimeError(f"send status {result.status}")


class ConsumerUser(RocketMQUser):
    """A clustering-mode pull consumer of --consumer-group; each user is one consumer instance."""

    fixed_count = 1

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.topic = opts.topic
        self.client = MQClient(namesrv_addrs(opts))
        self.client.start()
        self.consumer = PullConsumer(self.client, opts.consumer_group, self.topic,
                                     consume_from=opts.consume_from)
        self.consumer.start()

    def wait_time(self) -> float:
        return 0.0

    @task
    def consume(self) -> None:
        started = time.perf_counter()
        try:
            messages = self.consumer.poll(timeout=1.0)
        except Exception as exc:
            self.fire("PULL", self.topic, started, 0, exc)
            time.sleep(0.2)  # an unreachable cluster must not become a busy loop
            return
        self.fire("PULL", self.topic, started, sum(len(m.body) for m in messages), None, messages=len(messages))
        now_ms = time.time() * 1000
        for msg in messages:
            self.fire("CONSUME", self.topic, started, len(msg.body), None,
                      response_time=max(0.0, now_ms - msg.born_timestamp), msg_id=msg.msg_id)

    def on_stop(self) -> None:
        self.consumer.close()
        self.client.close()


@events.init.add_listener
def _configure_counts(environment: Any, **_kwargs: Any) -> None:
    opts = environment.parsed_options
    if opts is not None:
        ConsumerUser.fixed_count = max(0, int(opts.consumer_users))


@events.quitting.add_listener
def _close_shared_client(environment: Any, **_kwargs: Any) -> None:
    if ProducerUser._client is not None:
        ProducerUser._client.close()
        ProducerUser._client = None
