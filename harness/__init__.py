"""rmq-harness core: the remoting protocol, the CLI, run directories, history and metrics.

Terms: a *cluster* is NameServers plus broker groups; a *node* is one OS process of it; a *run* is one
recorded load (and later chaos) session in a run directory. Only loadtests/ may import locust."""
