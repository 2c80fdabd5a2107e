"""The steps of a batch, below Temporal: each function here is what one activity does, testable with a
database, a blob store and an upstream fake. Activities only unpack contracts, heartbeat and classify
errors around them."""
