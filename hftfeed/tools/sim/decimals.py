"""The decimal strings each venue writes for prices and quantities (pure).

The engine hands out ints scaled by 10**8. Venues print them differently:

* Binance spot: always 8 decimals (``"37000.01000000"``; see ``binance.py``);
* Binance USD-M futures and Bybit: the instrument's own precision, fixed width
  (``"7.6110"``, ``"813"``, ``"17440.00"``, ``"40.833"`` in the real captures and doc examples):
  as many decimals as the tick (prices) or the lot (quantities) needs;
* OKX: the shortest exact form (``"30316"``, ``"30316.1"``, ``"0.059"`` in the 2022 capture),
  which is also the form its CRC32 checksum is computed over.

The fixed-width formatters are exact only for multiples of the step they were built for; a value
that is not (a journal recorded with other specs) falls back to the shortest exact form rather
than lose digits.
"""

SCALE = 100000000
SCALE_DIGITS = 8


def decimals_for(step_scaled):
    """Decimals needed to print every multiple of ``step_scaled`` exactly (0..8)."""
    step = int(step_scaled)
    if step <= 0:
        return SCALE_DIGITS
    zeros = 0
    while zeros < SCALE_DIGITS and step % 10 == 0:
        step //= 10
        zeros += 1
    return SCALE_DIGITS - zeros


def shortest(value):
    """Scaled int -> shortest exact decimal string (``"30316"``, ``"0.059"``, ``"-1.5"``)."""
    if value < 0:
        return "-" + shortest(-value)
    whole, frac = divmod(value, SCALE)
    if not frac:
        return "%d" % whole
    return "%d.%s" % (whole, ("%08d" % frac).rstrip("0"))


def fixed(decimals):
    """A function: scaled int -> string with exactly ``decimals`` decimals.

    Built once per instrument and side (prices, quantities): it runs for every level of every
    message, so the divisors are precomputed and the common path is one ``%`` format.
    """
    decimals = int(decimals)
    if not 0 <= decimals <= SCALE_DIGITS:
        raise ValueError("decimals must be 0..8, got %r" % (decimals,))
    div = 10 ** (SCALE_DIGITS - decimals)
    if decimals == 0:
        def fmt0(value):
            if value % SCALE or value < 0:
                return shortest(value)
            return "%d" % (value // SCALE)
        return fmt0
    unit = 10 ** decimals
    pattern = "%%d.%%0%dd" % decimals

    def fmt(value):
        if value % div or value < 0:
            return shortest(value)
        units = value // div
        return pattern % (units // unit, units % unit)
    return fmt


def level_list(price_decimals, qty_decimals):
    """A function: flat ``[p0, q0, p1, q1, ...]`` -> ``["p0","q0"],["p1","q1"]`` (no brackets
    around the list) with fixed decimals for prices and quantities.

    The hot path of the futures and Bybit dialects: one ``%`` format per level with the
    divisions precomputed (a zero-decimal side prints its always-zero remainder with ``%.0s``,
    i.e. not at all, so every pair takes the same four arguments). Values that are not multiples
    of the step take the exact slow path.
    """
    pdiv = 10 ** (SCALE_DIGITS - price_decimals)
    qdiv = 10 ** (SCALE_DIGITS - qty_decimals)
    punit = 10 ** price_decimals
    qunit = 10 ** qty_decimals
    pfmt = "%%d.%%0%dd" % price_decimals if price_decimals else "%d%.0s"
    qfmt = "%%d.%%0%dd" % qty_decimals if qty_decimals else "%d%.0s"
    pair = '["' + pfmt + '","' + qfmt + '"]'
    fp = fixed(price_decimals)
    fq = fixed(qty_decimals)

    def one(p, q):
        if p % pdiv or q % qdiv or p < 0 or q < 0:
            return '["%s","%s"]' % (fp(p), fq(q))
        p //= pdiv
        q //= qdiv
        return pair % (p // punit, p % punit, q // qunit, q % qunit)

    def levels(flat):
        n = len(flat)
        if n == 0:
            return ""
        if n == 2:  # most diffs change one level a side: no list, no join
            return one(flat[0], flat[1])
        return ",".join([one(flat[i], flat[i + 1]) for i in range(0, n, 2)])
    return levels
