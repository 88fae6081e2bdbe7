"""A tenant's security policy after onboarding: its changes (merge patch, field-level diff), its
revisions and history, the lock-out guard and the rollout of the fields that live in AWS."""
