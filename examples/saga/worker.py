"""Trip booking: reserve a flight, reserve a hotel, charge the card; and the handlers that
undo a reservation (``compensate``) or recover from a declined card (``on_failure``).

Run with: ``dagnats worker examples.saga.worker:worker``.

Handlers must tolerate running more than once (delivery is at least once), so every external
side effect is keyed by ``ctx.idempotency_key``, which is stable across retries of a step.

Run it from the repository root: the ``examples`` package is not installed with dagnats.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import dagnats

worker = dagnats.Worker(name="saga-worker")

DECLINED_CARD = "4000-0000-0000-0002"


class Trip(BaseModel):
    traveller: str
    flight: str
    hotel: str
    card: str


class FlightBooking(BaseModel):
    trip: Trip
    flight_ref: str


class HotelBooking(BaseModel):
    trip: Trip
    flight_ref: str
    hotel_ref: str


class Receipt(BaseModel):
    flight_ref: str
    hotel_ref: str
    paid: bool
    note: str = ""


class FlightUndo(BaseModel):
    """The input of a compensator: the step it undoes, that step's output, and why."""

    original_step: str
    original_output: FlightBooking
    trigger_step: str | None
    trigger_error: str


class HotelUndo(BaseModel):
    original_step: str
    original_output: HotelBooking
    trigger_step: str | None
    trigger_error: str


class Failure(BaseModel):
    """The input of an on_failure handler: the step that failed and its error message."""

    failed_step: str
    error: str


@worker.task()
async def reserve_flight(ctx: dagnats.TaskContext, trip: Trip) -> FlightBooking:
    return FlightBooking(trip=trip, flight_ref=f"FL-{trip.flight}-{ctx.idempotency_key[-6:]}")


@worker.task()
async def reserve_hotel(ctx: dagnats.TaskContext, booking: FlightBooking) -> HotelBooking:
    return HotelBooking(
        trip=booking.trip, flight_ref=booking.flight_ref, hotel_ref=f"HT-{booking.trip.hotel}"
    )


@worker.task()
async def charge_card(ctx: dagnats.TaskContext, booking: HotelBooking) -> Receipt:
    if booking.trip.card == DECLINED_CARD:
        # Final: no retry can change the bank's answer. Any other exception would be retried.
        raise dagnats.NonRetryableError(f"card {booking.trip.card} was declined")
    return Receipt(flight_ref=booking.flight_ref, hotel_ref=booking.hotel_ref, paid=True)


@worker.task()
async def cancel_flight(ctx: dagnats.TaskContext, undo: FlightUndo) -> dict[str, Any]:
    ctx.logger.info("cancelling %s because %s", undo.original_output.flight_ref, undo.trigger_error)
    return {"cancelled": undo.original_output.flight_ref}


@worker.task()
async def cancel_hotel(ctx: dagnats.TaskContext, undo: HotelUndo) -> dict[str, Any]:
    ctx.logger.info("cancelling %s because %s", undo.original_output.hotel_ref, undo.trigger_error)
    return {"cancelled": undo.original_output.hotel_ref}


@worker.task()
async def invoice_later(ctx: dagnats.TaskContext, failure: Failure) -> Receipt:
    """on_failure: its output replaces the failed step's, and the run carries on."""
    return Receipt(flight_ref="", hotel_ref="", paid=False, note=failure.error)


@worker.task()
async def confirm(ctx: dagnats.TaskContext, receipt: Receipt) -> str:
    return "paid" if receipt.paid else f"booked, invoice to follow ({receipt.note})"
