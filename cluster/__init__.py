"""Starting, finding and stopping cluster nodes. local/ is the embedded backend (our own NameServer and
broker, one OS process per node, asyncio inside)."""
