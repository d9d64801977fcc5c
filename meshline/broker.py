"""The worker's Redis transport: kombu's, made safe for Celery 5.7's teardown of a lost
connection.

On losing the broker, Celery 5.7.0 first collects the connection, which detaches kombu's
transport (``transport.client = None``), and then closes it. Closing a channel that still
holds unacknowledged messages (an acks_late task running, or prefetched ones) restores
them through that detached transport, and kombu's Redis channel raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``: "Unrecoverable error",
the worker exits and nothing is processed until a person restarts it.

Catching that error afterwards is not enough: the close it interrupted leaves the event
loop half torn down, and the worker reconnects but never consumes again (measured with
tests/integration/test_broker_outage.py). So neither the restore nor a late
acknowledgement is attempted while the transport is detached. Nothing is lost: the messages stay in Redis's unacked set, and
kombu's periodic ``restore_visible`` puts them back after the visibility timeout; their
events are still pending, so the sweeper dispatches them again long before that.
"""

from kombu.transport import redis


class Channel(redis.Channel):
    @property
    def detached(self) -> bool:
        return self.connection is None or self.connection.client is None

    @property
    def do_restore(self) -> bool:
        return not self.detached

    def basic_ack(self, delivery_tag, multiple=False):
        # A task that finished after its connection was lost acknowledges on the old,
        # detached channel: kombu would raise AttributeError there, which nothing catches
        # ("Unrecoverable error"). Left unacked, the message is redelivered after the
        # visibility timeout, and the task, idempotent, returns early.
        if not self.detached:
            super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag, requeue=False):
        if not self.detached:
            super().basic_reject(delivery_tag, requeue=requeue)


class Transport(redis.Transport):
    Channel = Channel
