"""The tenant's KMS keys: created with their aliases, rotation and multi-Region replicas,
converged to a changed policy (rotation period, replicas added, restored or scheduled for
deletion: the policy rollout), and shredded (scheduled for deletion, replicas first) when the
tenant goes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.locality import replica_regions
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.onboarding.errors import TransientError
from tenant_security.onboarding.key_policy import tenant_key_policy

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef, TagTypeDef

    from tenant_security.models.policies import SecurityPolicies

# Key states of a key already scheduled for deletion (a multi-Region primary waits for its replicas).
SHREDDED_KEY_STATES = ("PendingDeletion", "PendingReplicaDeletion")
KEY_DELETION_WINDOW_DAYS = 7  # the KMS minimum: crypto-shredding as soon as KMS allows
# Replica states in which KMS is still at work on the replica: a rollout waits for it to settle.
BUSY_KEY_STATES = ("Creating", "Updating")


class KeyGone(Exception):
    """A tenant key the policy rollout needs is missing or shredded (not worth retrying)."""


class SingleRegionKey(Exception):
    """The policy asks for replicas of a key created single-Region: KMS cannot make it multi-Region."""


@dataclass(frozen=True)
class ReplicaPlan:
    """What brings a multi-Region key's replicas to the regions a policy wants."""

    add: tuple[str, ...] = ()  # wanted, no replica: ReplicateKey
    restore: tuple[str, ...] = ()  # wanted, replica pending deletion or disabled: cancel, enable
    drop: tuple[str, ...] = ()  # no longer wanted, replica alive: ScheduleKeyDeletion
    busy: tuple[str, ...] = ()  # KMS still creating or updating the replica: look again later

    @property
    def changes(self) -> dict[str, list[str]]:
        """The plan's non-empty parts, by name (a rollout's report)."""
        parts = {"added": self.add, "restored": self.restore, "dropped": self.drop}
        return {name: list(regions) for name, regions in parts.items() if regions}


def plan_replicas(states: Mapping[str, str], wanted: Sequence[str]) -> ReplicaPlan:
    """The plan from the replicas there are (``states``: KeyState by region) to ``wanted``.

    A replica scheduled for deletion stays in the key's configuration until KMS deletes it: a
    region that comes back restores it (CancelKeyDeletion leaves it disabled, EnableKey) rather
    than replicating again, which KMS would refuse. A disabled wanted replica is enabled: that is
    where a restore interrupted between its two calls stops.
    """
    add: list[str] = []
    restore: list[str] = []
    drop: list[str] = []
    busy: list[str] = []
    for region in wanted:
        state = states.get(region)
        if state is None:
            add.append(region)
        elif state in ("PendingDeletion", "Disabled"):
            restore.append(region)
        elif state != "Enabled":
            busy.append(region)
    for region, state in sorted(states.items()):
        if region in wanted or state == "PendingDeletion":
            continue
        (busy if state in BUSY_KEY_STATES else drop).append(region)
    return ReplicaPlan(tuple(add), tuple(restore), tuple(drop), tuple(busy))


class TenantKeys:
    """The data, secrets and api-keys keys of each tenant, found by their aliases."""

    def __init__(
        self, settings: Settings, kms: KMSClient, kms_in: Callable[[str], KMSClient] | None = None
    ) -> None:
        """``kms_in(region)``: KMS of another region, where a multi-Region key has a replica
        (shredding the key shreds its replicas there too)."""
        self.settings = settings
        self.kms = kms
        self.kms_in = kms_in

    def create(self, request: OnboardingRequest) -> dict[str, str]:
        """The tenant's keys (ARNs by purpose): a key for each purpose whose alias names none
        that is alive, rotation on, replicas in the regions the policy allows."""
        protection = request.security_policies.data_protection
        out = {}
        for purpose in KEY_PURPOSES:
            alias = self.settings.tenant_key_alias(request.tenant_id, purpose)
            meta = self.key_of_alias(alias)
            # A multi-Region primary waits in PendingReplicaDeletion until its replicas are gone:
            # shredded as much as one PendingDeletion, so a new key takes the alias.
            if meta is None or meta.get("KeyState") in SHREDDED_KEY_STATES:
                if meta is not None:
                    self.kms.delete_alias(AliasName=alias)
                meta = self.kms.create_key(
                    Description=f"{request.tenant_id} {purpose} key ({self.settings.resource_prefix})",
                    KeyUsage="ENCRYPT_DECRYPT",
                    KeySpec="SYMMETRIC_DEFAULT",
                    MultiRegion=protection.cross_region_encryption,
                    Policy=json.dumps(tenant_key_policy(self.settings, purpose)),
                    Tags=self.tags(request.tenant_id, purpose),
                )["KeyMetadata"]
                self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            self.kms.enable_key_rotation(
                KeyId=meta["KeyId"], RotationPeriodInDays=protection.key_rotation_days
            )
            if meta.get("MultiRegion"):
                regions = replica_regions(request.security_policies, self.settings.region)
                self.replicate(meta, regions, purpose, self.tags(request.tenant_id, purpose))
            out[purpose] = str(meta["Arn"])
        return out

    def shred(self, tenant_id: str) -> list[str]:
        """Schedule the tenant's keys for deletion (crypto-shredding); their key ids."""
        shredded = []
        for purpose in KEY_PURPOSES:
            alias = self.settings.tenant_key_alias(tenant_id, purpose)
            meta = self.key_of_alias(alias)
            if meta is None:
                continue
            # Replicas first: a multi-Region key's material lives on in every replica.
            for region, arn in self.replicas(meta).items():
                # by key id: the replica shares it (moto takes no ARN here; AWS takes either)
                self.schedule_deletion(self.kms_of(region), arn.rsplit("/", 1)[-1])
            if meta.get("KeyState") not in SHREDDED_KEY_STATES:
                self.schedule_deletion(self.kms, str(meta["KeyId"]))
            self.kms.delete_alias(AliasName=alias)
            shredded.append(str(meta["KeyId"]))
        return shredded

    def converge_key(self, tenant_id: str, purpose: str, policies: SecurityPolicies) -> dict[str, list[str]]:
        """Bring one tenant key to ``policies``: the rotation period, replicas in exactly the
        other data_locality regions (with cross_region_encryption; none without). Idempotent;
        what changed, by :attr:`ReplicaPlan.changes`. :class:`KeyGone` or
        :class:`SingleRegionKey` when it cannot be; :class:`TransientError` while KMS is still at
        work on a replica."""
        meta = self.key_of_alias(self.settings.tenant_key_alias(tenant_id, purpose))
        if meta is None or meta.get("KeyState") in SHREDDED_KEY_STATES:
            raise KeyGone(f"the tenant's {purpose} key is missing or scheduled for deletion")
        # Rotation is the primary's: KMS rotates a multi-Region key's replicas with it.
        self.kms.enable_key_rotation(
            KeyId=meta["KeyId"], RotationPeriodInDays=policies.data_protection.key_rotation_days
        )
        wanted = replica_regions(policies, self.settings.region)
        if not meta.get("MultiRegion"):
            if wanted:
                raise SingleRegionKey(f"the tenant's {purpose} key is single-Region: it has no replicas")
            return {}
        states = self.replica_states(meta)
        plan = plan_replicas(states, wanted)
        if plan.busy:
            raise TransientError(f"the {purpose} key's replicas in {', '.join(plan.busy)} are not settled")
        key_id = str(meta["KeyId"])  # a replica shares its primary's key id
        self.replicate(meta, list(plan.add), purpose, self.tags(tenant_id, purpose))
        for region in plan.restore:
            kms = self.kms_of(region)
            if states[region] == "PendingDeletion":
                self._cancel_deletion(kms, key_id)
            kms.enable_key(KeyId=key_id)
        for region in plan.drop:
            self.schedule_deletion(self.kms_of(region), key_id)
        return plan.changes

    def multi_region(self, tenant_id: str) -> bool | None:
        """Whether every key of the tenant is multi-Region (can have replicas); None without keys."""
        metas = [self.key_of_alias(self.settings.tenant_key_alias(tenant_id, p)) for p in KEY_PURPOSES]
        if any(meta is None for meta in metas):
            return None
        return all(bool(meta.get("MultiRegion")) for meta in metas if meta is not None)

    def replica_states(self, meta: KeyMetadataTypeDef) -> dict[str, str]:
        """The KeyState of each replica of a multi-Region key, by region (asked in its region:
        the primary's configuration lists replicas, not their states)."""
        states = {}
        for region, arn in self.replicas(meta).items():
            try:
                replica = self.kms_of(region).describe_key(KeyId=arn.rsplit("/", 1)[-1])["KeyMetadata"]
            except Exception as exc:
                if error_code(exc) == "NotFoundException":
                    continue  # deleted: the configuration lags behind
                raise
            states[region] = str(replica.get("KeyState", ""))
        return states

    def _cancel_deletion(self, kms: KMSClient, key_id: str) -> None:
        try:
            kms.cancel_key_deletion(KeyId=key_id)
        except Exception as exc:
            # another rollout cancelled it a moment ago: it is no longer pending deletion
            if error_code(exc) != "KMSInvalidStateException":
                raise

    def key_of_alias(self, alias: str) -> KeyMetadataTypeDef | None:
        """The key an alias names (DescribeKey), None when there is none."""
        try:
            meta = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        return meta

    def replicas(self, meta: KeyMetadataTypeDef) -> dict[str, str]:
        """A multi-Region key's replicas: ARN by region."""
        replicas = (meta.get("MultiRegionConfiguration") or {}).get("ReplicaKeys") or []
        return {str(r["Region"]): str(r["Arn"]) for r in replicas}

    def tags(self, tenant_id: str, purpose: str) -> list[TagTypeDef]:
        """The tags of a tenant key and its replicas (IAM reaches them by ``ManagedBy``)."""
        return [
            {"TagKey": "TenantId", "TagValue": tenant_id},
            {"TagKey": "Purpose", "TagValue": purpose},
            {"TagKey": "ManagedBy", "TagValue": f"{self.settings.resource_prefix}-tenant-security"},
        ]

    def replicate(
        self, meta: KeyMetadataTypeDef, regions: list[str], purpose: str, tags: list[TagTypeDef]
    ) -> None:
        """Replicas of a multi-Region tenant key in ``regions`` (those it lacks), same key policy
        (Secrets Manager's statements name the replica's region)."""
        for region in [r for r in regions if r not in self.replicas(meta)]:
            try:
                self.kms.replicate_key(
                    KeyId=meta["KeyId"],
                    ReplicaRegion=region,
                    Policy=json.dumps(tenant_key_policy(self.settings, purpose, region)),
                    Tags=tags,
                )
            except Exception as exc:
                # a concurrent rollout (or a retried step) replicated it first: it is there
                if error_code(exc) != "AlreadyExistsException":
                    raise

    def kms_of(self, region: str) -> KMSClient:
        """KMS in ``region`` (where a replica is)."""
        if self.kms_in is None:
            raise RuntimeError(f"no KMS client for {region}: the key replica there cannot be shredded")
        return self.kms_in(region)

    def schedule_deletion(self, kms: KMSClient, key_id: str) -> None:
        """Schedule a key (or replica) for deletion after KMS's shortest window; one already
        pending deletion (or gone) is left as it is."""
        try:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)
        except Exception as exc:
            # already pending deletion (or gone): shredded either way
            if error_code(exc) not in ("KMSInvalidStateException", "NotFoundException"):
                raise
