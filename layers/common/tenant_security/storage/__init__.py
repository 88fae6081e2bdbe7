"""Tenant files: encrypted client-side with the tenant data key, stored in the tenant data bucket.

A file is an Encryption SDK message (committing suite; tenant_id, purpose ``file`` and the key in
the context, so a ciphertext cannot be served as another tenant's or another file), stored with
SSE-KMS under the same tenant key (the bucket policy refuses any other key); once offboarding
schedules the tenant keys for deletion no file decrypts again.

The storage quota counts what S3 keeps (see :mod:`.ledger`): a write holds
the key's lock, reserves its bytes before the write and commits the version it made; a
replacement keeps the replaced version counted, as noncurrent, until the bucket's lifecycle rule
removes it (30 days); a DELETE removes every version of the key from S3 and releases each,
exactly once, whatever runs beside it.

A write whose outcome S3 did not tell (a timeout, a lost connection, a 5xx: the object may be
stored) is never taken for "nothing happened": the key's versions are read back and the ledger
made equal to them (:meth:`FileLedger.reconcile`); if S3 cannot be asked either, the reservation
stays with the key's lock for the sweep to settle. A DELETE that S3 only partly did (``Errors`` in
its reply) releases what went and answers 503: the next DELETE finishes it.

Files larger than the API's payload limit go straight to S3: ``upload`` reserves the file's
bytes and hands out a presigned POST for a staging key under ``.uploads/`` whose signed policy
fixes the key, the exact size and SSE-KMS with the tenant data key (S3 refuses anything else);
``complete`` checks what arrived, takes over the reservation and copies it to its final key,
once: completing it again (or at once, in parallel) answers with the same file. S3 accepts a
presigned POST until it expires however often it is sent, so the upload's item stays until then
and the sweep, after expiry, removes every version under its staging key -- whatever was posted
again -- and releases an upload never completed. The exposure: bytes posted to a granted staging
key beyond the reservation are kept by S3, uncounted, at most ``UPLOAD_URL_SECONDS`` +
``UPLOAD_GRACE_SECONDS`` + the sweep's period (15 + 5 + 5 minutes) after the grant, each POST
exactly the granted size (the lifecycle rule removes what a failed sweep leaves within days).
Such a file is encrypted by S3 under the tenant key (not client-side): ``download`` gives a
presigned GET for it.

The files side (S3):

- :mod:`.file_keys`: what a file key may be, the metadata names, the sizes and link lifetimes.
- :mod:`.s3_replies`: what S3's error says about a write: refused (nothing stored) or unanswered.
- :mod:`.settle`: what every operation on a key shares: S3's versions of it, the ledger made equal.
- :mod:`.files`: :class:`~.files.TenantFiles`, the files API (put, get, delete, list).
- :mod:`.transfers`: presigned uploads (and their completion) and downloads.
- :mod:`.sweep`: the scheduled work: expired uploads, unsettled keys, expired versions.

The ledger side (DynamoDB), :class:`~.ledger.FileLedger`:

- :mod:`.ledger_states`: locks, upload states and the values the ledger hands out.
- :mod:`.ledger_items`: the transaction items every ledger change is made of.
- :mod:`.ledger_writes`: a key's lock, its writes and its delete.
- :mod:`.ledger_uploads`: the reservations of presigned uploads.
- :mod:`.ledger_settle`: a key settled against what S3 keeps; the sweep's and lifecycle's releases.
"""
