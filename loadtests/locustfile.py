"""Entry locustfile: `locust -f loadtests/locustfile.py` (what `rmqh demo` and `rmqh locust` run).

Imports the option definitions and the users; everything else lives in the modules beside it."""
from loadtests import lifecycle, options  # noqa: F401  (parent watch; the --namesrv, --topic, ... options)
from loadtests.users import ConsumerUser, ProducerUser

__all__ = ["ProducerUser", "ConsumerUser"]
