"""The embedded backend: a NameServer and a broker speaking the RocketMQ remoting protocol, each its own
asyncio process (server.py lifecycle, namesrv.py, broker.py, store.py), and the supervisor that starts them."""
