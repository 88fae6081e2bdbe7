"""The tenant's KMS keys: created with their aliases, rotation and multi-Region replicas, and
shredded (scheduled for deletion, replicas first) when the tenant goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenant_security.aws import error_code
from tenant_security.config import KEY_PURPOSES, Settings
from tenant_security.locality import replica_regions
from tenant_security.models.onboarding import OnboardingRequest
from tenant_security.onboarding.key_policy import tenant_key_policy

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_kms.type_defs import KeyMetadataTypeDef, TagTypeDef

# Key states of a key already scheduled for deletion (a multi-Region primary waits for its replicas).
SHREDDED_KEY_STATES = ("PendingDeletion", "PendingReplicaDeletion")
KEY_DELETION_WINDOW_DAYS = 7  # the KMS minimum: crypto-shredding as soon as KMS allows


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
            meta = self._key_of_alias(alias)
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
                    Tags=self._tags(request.tenant_id, purpose),
                )["KeyMetadata"]
                self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            self.kms.enable_key_rotation(
                KeyId=meta["KeyId"], RotationPeriodInDays=protection.key_rotation_days
            )
            if meta.get("MultiRegion"):
                regions = replica_regions(request.security_policies, self.settings.region)
                self._replicate(meta, regions, purpose, self._tags(request.tenant_id, purpose))
            out[purpose] = str(meta["Arn"])
        return out

    def shred(self, tenant_id: str) -> list[str]:
        """Schedule the tenant's keys for deletion (crypto-shredding); their key ids."""
        shredded = []
        for purpose in KEY_PURPOSES:
            alias = self.settings.tenant_key_alias(tenant_id, purpose)
            meta = self._key_of_alias(alias)
            if meta is None:
                continue
            # Replicas first: a multi-Region key's material lives on in every replica.
            for region, arn in self._replicas(meta).items():
                # by key id: the replica shares it (moto takes no ARN here; AWS takes either)
                self._schedule_deletion(self._kms_of(region), arn.rsplit("/", 1)[-1])
            if meta.get("KeyState") not in SHREDDED_KEY_STATES:
                self._schedule_deletion(self.kms, str(meta["KeyId"]))
            self.kms.delete_alias(AliasName=alias)
            shredded.append(str(meta["KeyId"]))
        return shredded

    def _key_of_alias(self, alias: str) -> KeyMetadataTypeDef | None:
        try:
            meta = self.kms.describe_key(KeyId=alias)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        return meta

    def _replicas(self, meta: KeyMetadataTypeDef) -> dict[str, str]:
        """A multi-Region key's replicas: ARN by region."""
        replicas = (meta.get("MultiRegionConfiguration") or {}).get("ReplicaKeys") or []
        return {str(r["Region"]): str(r["Arn"]) for r in replicas}

    def _tags(self, tenant_id: str, purpose: str) -> list[TagTypeDef]:
        return [
            {"TagKey": "TenantId", "TagValue": tenant_id},
            {"TagKey": "Purpose", "TagValue": purpose},
            {"TagKey": "ManagedBy", "TagValue": f"{self.settings.resource_prefix}-tenant-security"},
        ]

    def _replicate(
        self, meta: KeyMetadataTypeDef, regions: list[str], purpose: str, tags: list[TagTypeDef]
    ) -> None:
        """Replicas of a multi-Region tenant key in ``regions`` (those it lacks), same key policy
        (Secrets Manager's statements name the replica's region)."""
        for region in [r for r in regions if r not in self._replicas(meta)]:
            self.kms.replicate_key(
                KeyId=meta["KeyId"],
                ReplicaRegion=region,
                Policy=json.dumps(tenant_key_policy(self.settings, purpose, region)),
                Tags=tags,
            )

    def _kms_of(self, region: str) -> KMSClient:
        if self.kms_in is None:
            raise RuntimeError(f"no KMS client for {region}: the key replica there cannot be shredded")
        return self.kms_in(region)

    def _schedule_deletion(self, kms: KMSClient, key_id: str) -> None:
        try:
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KEY_DELETION_WINDOW_DAYS)
        except Exception as exc:
            # already pending deletion (or gone): shredded either way
            if error_code(exc) not in ("KMSInvalidStateException", "NotFoundException"):
                raise
