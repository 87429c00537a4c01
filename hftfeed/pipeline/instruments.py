"""Load a feed's instrument metadata (tick, lot, minimum quantity, contract size, status) once at
start from the venue's public instruments endpoint, and hand it to the publisher (``D``
messages, PROTOCOL.md).

Metadata is advisory: the books never wait for it. :func:`load_details` runs as a task of its
own beside the connection supervisors; every failure (timeout, refused connection, HTTP error,
rate limit, a body that is not the venue's shape, a symbol the list does not name, a value that
cannot be right) is one clear, escaped and bounded log line and a FeedStats counter, and the
instrument is then published without a ``D``. Requests go through the REST transport
(:class:`hftfeed.transport.rest.HttpClient`: its per-request timeout and body-size cap) under a
deadline for the whole load; a 418/429/503 with a usable Retry-After is retried once within it.
"""

import asyncio
import logging
import time

from hftfeed.errors import HftfeedError, HttpStatusError, escape_text
from hftfeed.transport.rest import HttpClient
from hftfeed.venues import instruments, registry

log = logging.getLogger("hftfeed.feed")

#: The largest instrument list accepted (Binance spot's is a few MB; Deribit's options ~2 MB).
MAX_LIST_BYTES = 32 * 2 ** 20
#: Symbols named in one log line at most (the rest are counted).
MAX_NAMED = 10


def deadline_s(feed_cfg) -> float:
    """The whole load (every path, one retry) gets three snapshot timeouts."""
    return 3 * feed_cfg.snapshot_timeout_s


async def load_details(feed, clock_ns=time.time_ns):
    """Fetch, check and publish the feed's instrument details; never raises (but for
    cancellation). Returns {symbol: InstrumentSpec} (empty when nothing could be loaded)."""
    cfg = feed.cfg
    endpoint = registry.spec(cfg.venue).instruments
    if not cfg.instrument_metadata:
        log.info("%s: instrument metadata off (instrument_metadata: false): no D messages",
                 cfg.venue)
        return {}
    if isinstance(endpoint, str):
        log.info("%s: no instrument metadata: %s", cfg.venue, endpoint)
        return {}
    client = HttpClient(cfg.rest_url, ssl_context=feed.ssl_context,
                        timeout_s=cfg.snapshot_timeout_s, max_body_bytes=MAX_LIST_BYTES)
    try:
        raws = await asyncio.wait_for(_fetch_all(feed, client, endpoint), deadline_s(cfg))
    except asyncio.TimeoutError:
        return _failed(feed, "no complete answer within %.1f s" % deadline_s(cfg))
    except HttpStatusError as exc:
        return _failed(feed, "%s: %s" % (exc, escape_text(exc.body or b"", 200)))
    except HftfeedError as exc:         # TransportError, HttpError, VenueError (bad body)
        return _failed(feed, str(exc))
    finally:
        await client.close()
    wanted = list(feed.instruments)
    specs, refused, missing = instruments.build_specs(raws, wanted)
    stats = feed.stats
    for symbol, reason in refused[:MAX_NAMED]:
        log.warning("%s %s: instrument details refused (%s); published without them",
                    cfg.venue, escape_text(symbol, 40), escape_text(reason, 200))
    stats.instruments_refused += len(refused)
    if missing:
        stats.instruments_missing += len(missing)
        log.warning("%s: %d configured symbol(s) not in the venue's instrument list (a typo, "
                    "or delisted?): %s", cfg.venue, len(missing),
                    ", ".join(escape_text(s, 40) for s in missing[:MAX_NAMED]))
    stats.instruments_loaded += len(specs)
    loaded_ns = clock_ns()
    publisher = feed.publisher
    for symbol, spec in specs.items():
        inst = feed.instruments.get(symbol)
        if inst is not None:
            publisher.set_details(inst.instrument_id, spec, loaded_ns)
    if specs:
        publisher.send_instruments()
    log.info("%s: instrument details for %d of %d symbol(s)", cfg.venue, len(specs),
             len(wanted))
    return specs


async def _fetch_all(feed, client, endpoint):
    parse = registry.instruments_parser(feed.cfg.venue)
    raws = []
    for path in endpoint.paths:
        raws.extend(parse(await _get(feed, client, path)))
    return raws


async def _get(feed, client, path):
    """One GET; a rate limit or overload with a Retry-After is waited out once."""
    try:
        return (await client.get(path)).body
    except HttpStatusError as exc:
        if exc.status not in (418, 429, 503) or exc.retry_after_s is None:
            raise
        if exc.status != 503:
            feed.stats.rate_limited += 1
        log.warning("%s: instrument list: HTTP %d, retrying in %.1f s", feed.cfg.venue,
                    exc.status, exc.retry_after_s)
        await asyncio.sleep(exc.retry_after_s)
        return (await client.get(path)).body


def _failed(feed, why):
    feed.stats.instrument_errors += 1
    log.warning("%s: instrument metadata not loaded (%s); books are unaffected, instruments "
                "are published without D messages", feed.cfg.venue, escape_text(why, 300))
    return {}
