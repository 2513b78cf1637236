"""Book a trip: reserve a flight and a hotel, then charge the card.

The first run succeeds. The second run uses a card that is declined: the engine
reverts what already ran, newest first (the hotel, then the flight), and re-raises
the payment error. Run it with ``python examples/travel_booking.py``.
"""

from __future__ import annotations

from typing import Any

import tideflow


class CardDeclined(Exception):
    """The payment provider refused the card."""


class ReserveFlight(tideflow.Task):
    """Hold a seat; give it back on revert."""

    default_provides = "flight"

    def execute(self, origin: str, destination: str) -> str:
        print(f"  reserve flight {origin} -> {destination}")
        return f"FL-{origin}-{destination}"

    def revert(self, result: Any, **kwargs: Any) -> None:
        print(f"  cancel flight {result}")


class ReserveHotel(tideflow.Task):
    """Hold a room; give it back on revert."""

    default_provides = "hotel"

    def execute(self, destination: str, nights: int = 1) -> str:
        print(f"  reserve hotel in {destination} for {nights} night(s)")
        return f"HT-{destination}-{nights}"

    def revert(self, result: Any, **kwargs: Any) -> None:
        print(f"  cancel hotel {result}")


class ChargeCard(tideflow.Task):
    """Charge for both reservations."""

    default_provides = "receipt"

    def execute(self, card: str, flight: str, hotel: str) -> str:
        if card.startswith("0000"):
            raise CardDeclined(f"card {card} was declined")
        print(f"  charge {card} for {flight} and {hotel}")
        return f"receipt for {flight} + {hotel}"


def make_flow() -> tideflow.LinearFlow:
    """Reservations may happen in any order; payment comes after both."""
    reservations = tideflow.UnorderedFlow("reserve").add(
        ReserveFlight("reserve-flight"), ReserveHotel("reserve-hotel")
    )
    return tideflow.LinearFlow("book-trip").add(reservations, ChargeCard("charge-card"))


def book(card: str) -> None:
    """Run the booking flow with ``card`` and say how it ended."""
    store = {"origin": "OSL", "destination": "LIS", "nights": 3, "card": card}
    engine = tideflow.load(make_flow(), store=store)
    engine.atom_notifier.register(
        "REVERTED", lambda state, details: print(f"  [{details['task_name']} reverted]")
    )
    try:
        engine.run()
    except CardDeclined as exc:
        print(f"booking failed ({exc}); flow is {engine.storage.get_flow_state()}")
    else:
        print(f"booked: {engine.storage.fetch('receipt')}")


if __name__ == "__main__":
    print("trip with a good card:")
    book("4111-1111")
    print("trip with a declined card:")
    book("0000-0000")
