from django.apps import AppConfig


class BatchjobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Batch jobs"

    # What this app plugs into the core (dashboard/plugins.py): dotted paths, each imported on
    # first use, never at start.
    # The run engine's operations, imported on its first lookup (dashboard/runs/operations.py).
    operation_modules = (
        "batchjobs.vendors.optimove_daily.operation",
        "batchjobs.vendors.talkifai.operation",
    )
    # Modules adding their endpoints to the API's router (dashboard/api/endpoints/__init__.py).
    api_modules = ("batchjobs.api",)
    # Vendor kind -> (path prefix, sandbox class) on the sandboxes' server (dashboard/ops/sandboxes.py).
    sandboxes = {
        "optimove_batch": (
            "optimove-batch",
            "batchjobs.vendors.optimove_daily.sandbox.OptimoveDailySandbox",
        ),
        "talkifai": ("talkifai", "batchjobs.vendors.talkifai.sandbox.TalkifaiSandbox"),
    }
    # Called with (tenant, stdout) by setup_demo.
    demo_data = ("batchjobs.demo.register_demo_batch_jobs",)
    # What recurring schedules (dashboard.recurring) can fire.
    recurring_targets = {"daily_trigger": "batchjobs.recurring.DailyTriggerTarget"}
