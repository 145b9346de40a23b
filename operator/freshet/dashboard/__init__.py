"""The freshet dashboard: TrainingPolicies, their runs and quarantine in a browser.

`freshet dashboard` serves server-rendered pages (readable without JavaScript) and
four actions (retrain, roll back, pin/unpin, release a quarantined batch). It acts
as the person using it: locally with their kubeconfig identity, in the cluster
with their bearer token, checked by TokenReview, and every page and action is
allowed only when a SubjectAccessReview says that person may get (or patch) the
policy. Changes are the same patches `kubectl freshet` makes (freshet.actions),
made with the person's own credentials, so RBAC and audit logs name them.

Modules: `access` (who is asking, what they may do), `sessions` (login and CSRF),
`gather` (reads from the API and the store), `views` (what each page shows, pure),
`charts` (inline SVG, pure), `app` (routes), `command` (the CLI).
"""
