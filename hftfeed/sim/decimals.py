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
