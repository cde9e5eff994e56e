"""Which integration speaks for a CRM account: ``pk = ACCOUNT#<crm>#<account id>``, ``sk = HOLDER`` in the
integrations table, claimed when the OAuth callback connects the account, released when the integration is
deactivated or moves to another account.

Two active integrations on one amoCRM account would share its talks' leads (whichever hook came first) and the
one chat channel: so a second one is refused at connect, with a message that names the holder. A claim left by a
holder that is no longer active, or no longer on that account, is taken over.
"""

from __future__ import annotations

from collections.abc import Callable

from botocore.exceptions import ClientError

from leadbridge.aws.store.dynamo import dynamodb_client, from_item
from leadbridge.contract.integration import Integration

HOLDER_SK = "HOLDER"


def claim_pk(crm: str, account_id: str) -> str:
    return f"ACCOUNT#{crm}#{account_id}"


class DynamoAccountClaims:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def claim(
        self, crm: str, account_id: str, integration_id: str, holder_of: Callable[[str], Integration | None]
    ) -> str | None:
        """Take the account for the integration; None when it is (now) its own, else the integration holding it.
        ``holder_of`` reads a holder's settings, to tell a live claim from one its holder left behind."""
        key = {"pk": {"S": claim_pk(crm, account_id)}, "sk": {"S": HOLDER_SK}}
        for _ in range(3):
            held = dynamodb_client().get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
            holder = str(from_item(held).get("integration_id") or "") if held else ""
            if holder and holder != integration_id:
                current = holder_of(holder)
                if current is not None and current.active and current.account_id == account_id:
                    return holder
            # Taken only if still as read: free, or held by the one whose claim was found stale.
            try:
                dynamodb_client().put_item(
                    TableName=self.table_name,
                    Item={**key, "integration_id": {"S": integration_id}},
                    ConditionExpression="attribute_not_exists(pk) OR integration_id = :seen",
                    ExpressionAttributeValues={":seen": {"S": holder or integration_id}},
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                continue  # someone claimed meanwhile: read again
            return None
        raise RuntimeError("account claim kept changing")  # three races in a row: let the caller retry

    def release(self, crm: str, account_id: str, integration_id: str) -> None:
        """Free the account, only if this integration held it."""
        try:
            dynamodb_client().delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": claim_pk(crm, account_id)}, "sk": {"S": HOLDER_SK}},
                ConditionExpression="integration_id = :me",
                ExpressionAttributeValues={":me": {"S": integration_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
