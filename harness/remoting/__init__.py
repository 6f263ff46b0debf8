"""The RocketMQ remoting protocol: a sans-IO codec (frames, codes, message records, JSON bodies) and
blocking clients built on it. Nothing here imports asyncio, gevent or locust."""
