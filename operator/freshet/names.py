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

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "freshet"
POLICY_LABEL: Final = f"{GROUP}/policy"
RUN_ID_LABEL: Final = f"{GROUP}/run-id"

RETRAIN_ANNOTATION: Final = f"{GROUP}/retrain"
"""Setting this annotation on a policy to a new value requests one retrain."""

ROLLBACK_ANNOTATION: Final = f"{GROUP}/rollback"
"""Setting this annotation on a policy to a new value rolls the serving model back once."""
