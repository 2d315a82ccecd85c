"""Two workflows over the same tasks.

``booking_saga``: reserve-flight -> reserve-hotel -> charge-card, where each reservation names
a ``compensate`` handler. If charge-card fails for good, the compensators of the steps that
completed run one at a time in reverse completion order (hotel, then flight) and the run
ends ``compensated``.

``booking_with_fallback``: charge-card has an ``on_failure`` handler instead; when the card
is declined, the handler's output becomes charge-card's output (status ``recovered``) and
``confirm`` runs with it, so the run completes.
"""

from __future__ import annotations

import dagnats
from examples.saga.worker import (
    cancel_flight,
    cancel_hotel,
    charge_card,
    confirm,
    invoice_later,
    reserve_flight,
    reserve_hotel,
)

RETRY = dagnats.RetryPolicy(max_attempts=2, initial_delay="100ms")

booking_saga = dagnats.Workflow("booking-saga", version="1.0", default_retry=RETRY)
# Handler steps are ordinary normal steps with no dependencies; they never start on their own.
undo_flight = booking_saga.step("cancel-flight", task=cancel_flight)
undo_hotel = booking_saga.step("cancel-hotel", task=cancel_hotel)
flight = booking_saga.step("reserve-flight", task=reserve_flight, compensate=undo_flight)
hotel = booking_saga.step(
    "reserve-hotel", task=reserve_hotel, depends_on=[flight], compensate=undo_hotel
)
booking_saga.step("charge-card", task=charge_card, depends_on=[hotel])


booking_with_fallback = dagnats.Workflow("booking-with-fallback", version="1.0")
fb_flight = booking_with_fallback.step("reserve-flight", task=reserve_flight)
fb_hotel = booking_with_fallback.step("reserve-hotel", task=reserve_hotel, depends_on=[fb_flight])
fb_charge = booking_with_fallback.step(
    "charge-card", task=charge_card, depends_on=[fb_hotel], on_failure="invoice-later"
)
booking_with_fallback.step("confirm", task=confirm, depends_on=[fb_charge])
booking_with_fallback.step("invoice-later", task=invoice_later)  # handlers may come later
