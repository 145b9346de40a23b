"""Names freshet shares with the Kubernetes API: the resource, labels, annotations.

Kept in one place because they are a public interface: users select Jobs by
these labels, GitOps tools are told to ignore fields by the field manager, and
a rename here is a breaking change for them.
"""

from typing import Final

GROUP: Final = "freshet.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "TrainingPolicy"
PLURAL: Final = "trainingpolicies"
SET_KIND: Final = "TrainingPolicySet"
SET_PLURAL: Final = "trainingpolicysets"

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "freshet"
POLICY_LABEL: Final = f"{GROUP}/policy"
RUN_ID_LABEL: Final = f"{GROUP}/run-id"

RETRAIN_ANNOTATION: Final = f"{GROUP}/retrain"
"""Setting this annotation on a policy to a new value requests one retrain."""

ROLLBACK_ANNOTATION: Final = f"{GROUP}/rollback"
"""Setting this annotation on a policy to a new value rolls the serving model back once."""

TRAINING_ACCOUNTS_ANNOTATION: Final = f"{GROUP}/training-service-accounts"
"""On a Namespace, set by its admin: the ServiceAccounts (comma-separated) training
Jobs there may run as, besides `default`. The chart's ValidatingAdmissionPolicy
reads the same annotation."""


def allowed_training_accounts(namespace_annotations: dict[str, str]) -> set[str]:
    """The ServiceAccounts training Jobs may run as in a namespace with these annotations."""
    listed = namespace_annotations.get(TRAINING_ACCOUNTS_ANNOTATION, "")
    return {"default", *(name.strip() for name in listed.split(",") if name.strip())}
