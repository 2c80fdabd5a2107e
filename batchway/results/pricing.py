"""What a line cost: the operators' price table (per provider and model, per million tokens, with the
batch discount), applied when the line is stored, so later price changes never rewrite history.

Costs are integers in micro-dollars (a millionth of a dollar), so sums are exact."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from batchway.clock import now
from batchway.storage.models import Price
from batchway.upstreams.result_line import Usage


@dataclass(frozen=True, slots=True)
class PriceBook:
    """The prices that apply to one provider, longest model prefix first."""

    prices: tuple[Price, ...] = ()

    @classmethod
    def load(cls, engine: Engine, *providers: str) -> PriceBook:
        """Prices set for any of `providers` (a provider's name, then its kind: the name wins)."""
        with Session(engine) as session:
            rows = session.exec(select(Price).where(col(Price.provider).in_(providers))).all()
        rank = {provider: index for index, provider in enumerate(providers)}
        ordered = sorted(rows, key=lambda p: (-len(p.model), rank[p.provider]))
        return cls(tuple(ordered))

    def price_for(self, model: str | None) -> Price | None:
        if not model:
            return None
        return next((price for price in self.prices if model.startswith(price.model)), None)

    def cost_micros(self, model: str | None, usage: Usage, *, batch: bool = True) -> int:
        price = self.price_for(model)
        if price is None:
            return 0
        cached = min(usage.cached_tokens, usage.input_tokens)
        dollars_per_million = (
            (usage.input_tokens - cached) * price.input_per_million
            + cached * price.cached_input_per_million
            + usage.output_tokens * price.output_per_million
        )
        discount = price.batch_discount if batch else 0.0
        return round(dollars_per_million * (1 - discount))  # per million tokens -> micro-dollars


def set_price(
    engine: Engine,
    *,
    provider: str,
    model: str,
    input_per_million: float,
    cached_input_per_million: float | None,
    output_per_million: float,
    batch_discount: float,
) -> Price:
    if (
        min(input_per_million, output_per_million, cached_input_per_million or 0) < 0
        or not 0 <= batch_discount < 1
    ):
        raise ValueError("prices must be non-negative and the batch discount in [0, 1)")
    with Session(engine, expire_on_commit=False) as session:
        row = session.exec(select(Price).where(Price.provider == provider, Price.model == model)).first()
        row = row or Price(
            provider=provider,
            model=model,
            input_per_million=0,
            cached_input_per_million=0,
            output_per_million=0,
            updated_at=now(),
        )
        row.input_per_million = input_per_million
        row.cached_input_per_million = (
            input_per_million if cached_input_per_million is None else cached_input_per_million
        )
        row.output_per_million = output_per_million
        row.batch_discount = batch_discount
        row.updated_at = now()
        session.add(row)
        session.commit()
        return row


def list_prices(engine: Engine) -> list[Price]:
    with Session(engine) as session:
        return list(session.exec(select(Price).order_by(Price.provider, Price.model)).all())
