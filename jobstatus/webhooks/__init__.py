"""Webhooks: tell the client when its job ends, signed, retried and durable.

``JobTracker(store, webhooks=Webhooks(secret=…))`` and ``tracker.submit(…, webhook_url=…)``:
when the job ends (``done``, ``failed`` or ``cancelled``) its final envelope -- the document's
``response`` -- is POSTed to the URL, signed as the Standard Webhooks specification says, and
retried on a schedule; the delivery's state lives in the job's document under ``webhook``.

One module per job: :mod:`~jobstatus.webhooks.config` (:class:`Webhooks`),
:mod:`~jobstatus.webhooks.urls` (which URLs a job may name, how answers show them),
:mod:`~jobstatus.webhooks.signing`, :mod:`~jobstatus.webhooks.policy` (which addresses a
delivery may reach), :mod:`~jobstatus.webhooks.sending` (one attempt over :mod:`http.client`),
:mod:`~jobstatus.webhooks.state` (the document's ``webhook`` key) and
:mod:`~jobstatus.webhooks.deliverer` (claims, retries, sweeps).
"""

from jobstatus.webhooks.config import Webhooks
from jobstatus.webhooks.deliverer import Deliverer
from jobstatus.webhooks.signing import generate_secret
from jobstatus.webhooks.state import DeliveryState

__all__ = ["Deliverer", "DeliveryState", "Webhooks", "generate_secret"]
