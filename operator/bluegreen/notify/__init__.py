"""Release notifications (``spec.notify``): signed JSON webhooks and Slack-compatible incoming-webhook
messages, sent from the operator's own threads after each status write (``bluegreen.notify.sender``).

An adapter like the others: it imports the core only (and the logging helper); no other adapter imports it.
"""

from bluegreen.notify.sender import Notifier

__all__ = ["Notifier"]
