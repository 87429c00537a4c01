"""Exchange adapters: one module per venue, each only a translator.

An adapter turns the venue's messages into the shared update types (``hftfeed/core/updates.py``) and
supplies the venue's continuity rule (a ``hftfeed.core.sync.SyncRule``) and its connection facts
(limits, stream names, subscribe messages). Connecting, reconnecting, snapshots, resync and
publishing live in ``hftfeed/pipeline/`` and are shared by every venue.

Which venues exist, their wire ids, names, default URLs and symbol syntax are in one table,
``hftfeed/venues/registry.py``; ``registry.adapter(name)`` returns a venue's adapter class. This
package imports nothing eagerly, so reading the registry never loads adapter code.
"""
