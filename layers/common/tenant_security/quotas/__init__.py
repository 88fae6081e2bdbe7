"""Exact per-tenant quotas: every count is one atomic conditional DynamoDB write, never a read
followed by a write (two requests reading the same count would both be admitted).

- :mod:`.rate`: request rate and cost windows, sharded counters, the monthly budget alert, and the
  concurrency leases taken in the same write.
- :mod:`.leases`: the concurrency leases (max_concurrent_requests) on a tenant's first counter
  item, expiring by themselves.
- :mod:`.storage`: bytes and files a tenant stores, reserved before a write.
- :mod:`.deadline`: max_request_duration, kept below the invocation's own timeout.
- :mod:`.guard`: what the request middleware asks before and after a request.
"""
