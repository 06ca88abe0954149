"""Deploys: plans, strategies (parallel, rolling, canary), the saga journal and rollback
(docs/deploy.md); ``sane.api.run_deploy`` is the library's way in."""
