"""Webhooks: tell an org's own endpoint when one of its batches ends, the way OpenAI does.

The flow, for the next engineer:

1. An operator registers a URL per org (`batchway webhooks set --org X --url U`); batchway generates
   the secret with `signing.new_secret()` (`whsec_` + base64) and shows it once. Receivers pass that
   whole string to the `openai` SDK (`OpenAI(webhook_secret=...).webhooks.unwrap(body, headers)`).
2. When a batch reaches a terminal status, `events.event_type_for(status)` names the event
   (`batch.completed`, `batch.failed`, `batch.cancelled`, `batch.expired`) and `events.batch_event(...)`
   builds it, with `events.event_id(batch_id, status)` as its id: the same on every attempt, and sent
   as the `webhook-id` header, so receivers can drop duplicates.
3. Each attempt is one `delivery.deliver(...)` call: the event POSTed as JSON, signed per Standard
   Webhooks (`signing.sign`) with the attempt's own timestamp (receivers refuse timestamps more than
   5 minutes off, so a retry must be signed afresh). It returns a `DeliveryResult` for the delivery
   log and never raises for HTTP problems.
4. Retrying is Temporal's job: the activity raises on a result that is not ok (non-retryable when
   `result.retryable` is False, e.g. 410 Gone or another 4xx) and the retry policy does the backoff.
"""
