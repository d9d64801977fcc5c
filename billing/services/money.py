"""Money rules, in one place: Decimal only, two places, half-up, rounded once where stated.

A line's amount is ``quantity x rate`` rounded to cents when the line is priced (an item is
proposed or adjusted). An invoice's subtotal is the exact sum of its line amounts; its tax
is ``subtotal x tax rate`` rounded once; its total is ``subtotal + tax`` (no rounding left).
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_QUANTITY = Decimal("100000")


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(quantity: Decimal, rate: Decimal) -> Decimal:
    return round_money(quantity * rate)


def totals(line_amounts, tax_rate: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(subtotal, tax, total) of an invoice by the rule above."""
    subtotal = sum(line_amounts, Decimal("0.00"))
    tax = round_money(subtotal * tax_rate)
    return subtotal, tax, subtotal + tax


def parse_decimal(value, field: str, *, minimum=Decimal("0"), maximum=MAX_QUANTITY) -> Decimal:
    """A user's number as Decimal within bounds, or BillingError naming the field."""
    from billing.services.errors import BillingError

    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BillingError("invalid_number", f"'{value}' is not a number.", field) from None
    if not number.is_finite():
        raise BillingError("invalid_number", f"'{value}' is not a number.", field)
    if number < minimum:
        raise BillingError("negative", f"{field} cannot be below {minimum}.", field)
    if number > maximum:
        raise BillingError("too_large", f"{field} cannot exceed {maximum}.", field)
    if number != number.quantize(CENT):
        raise BillingError("too_precise", f"{field} has at most two decimal places.", field)
    return number.quantize(CENT)
