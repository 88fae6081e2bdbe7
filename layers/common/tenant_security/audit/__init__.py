"""The tenant audit trail: activity events → hash chain → object-locked S3, checkpoints, verifier."""
