"""Compliance reports of a tenant for a period (SOX, GDPR, ISO 27001), built only from evidence.

A framework is a list of controls (SOX IT general controls, GDPR articles, ISO 27001 Annex A
controls), each mapped to the checks that evidence it; a check is computed once per report.

Each check ends ``pass``, ``fail`` or ``insufficient_evidence`` and cites what it rests on (users,
roles, audit sequence numbers, key and bucket state). The report is ``non_compliant`` if any check fails,
``insufficient_evidence`` if any lacks evidence, and ``compliant`` only when every check passed on
evidence -- never by default.

Modules: ``evidence`` (a period's users, trail and chain verification), ``tenant_controls``
(the state of the tenant's keys and buckets, as KMS and S3 report it), ``checks`` (every check),
``frameworks`` (the catalogue of controls and the report), ``html_report`` (the report as a
page). Import from the module: this package re-exports nothing.
"""
