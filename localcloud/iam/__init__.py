"""IAM, KMS key policies and resource policies, enforced by the local cloud as AWS enforces them.

moto accepts every call. The local cloud signs each function's calls with its own access key
(``<key>-<LogicalId>``); :mod:`localcloud.iam.enforce` evaluates every such call against the
function's role in template.yaml (as provisioned in moto's IAM) and the resource's own policy
(key, bucket, bus, queue, topic, secret policy) with @cloud-copilot/iam-simulate, run by
:mod:`localcloud.iam.evaluator` in one long-lived node process. Calls with any other key (the
tests', an operator's, the local cloud's own) stay unchecked, as an administrator's would be.
"""
