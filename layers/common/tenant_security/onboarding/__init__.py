"""Tenant onboarding and offboarding steps, run one by one by the Step Functions state machines.

**An execution undoes only what it created itself.** Registration claims the tenant id for one
execution (conditional write: a new id, or one whose earlier attempt FAILED); every later step,
and the compensation, first checks that this execution still owns a PROVISIONING tenant, so a
repeated or duplicated request -- by the API or by an event, in any status -- never creates or
deletes anything of a tenant another execution built. Within its own run every step is
idempotent (a Step Functions retry changes nothing more), and compensation finds the tenant's
resources by their names, so it undoes whatever exists however far the run got.

**Offboarding runs only on a recorded decision**: the API's DELETE /tenants/{t} (a
platform-admin, audited) sets status OFFBOARDING first; an offboarding event for a tenant in any
other status is refused.

Modules: ``requests`` (what the API calls to ask for a workflow), ``validation`` (the request
against the deployment), ``executions`` (whether an execution may still act), ``provisioner``
(the steps, one method per task), the resources -- ``key_policy`` and ``keys``, ``buckets``,
``credentials`` (secrets, first admin), ``tenant_database`` -- and ``teardown``, which
compensation and offboarding share. Import from the module: this package re-exports nothing,
so a handler loads only what it uses.
"""
