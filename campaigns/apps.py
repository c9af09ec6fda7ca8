from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    # What this app plugs into the core (dashboard/plugins.py): dotted paths, each imported on
    # first use, never at start.
    # The run engine's operations, imported on its first lookup (dashboard/runs/operations.py).
    operation_modules = (
        "campaigns.vendors.optimove_campaigns.operation",
        "campaigns.vendors.altcraft.operation",
    )
    # Modules adding their endpoints to the API's router (dashboard/api/endpoints/__init__.py).
    api_modules = (
        "campaigns.event_generators.api",
        "campaigns.altcraft_launches.api",
        "campaigns.altcraft_launches.import_api",
    )
    # Vendor kind -> (path prefix, sandbox class) on the sandboxes' server (dashboard/ops/sandboxes.py).
    sandboxes = {
        "optimove_campaigns": (
            "optimove-campaigns",
            "campaigns.vendors.optimove_campaigns.sandbox.OptimoveCampaignsSandbox",
        ),
        "altcraft": ("altcraft", "campaigns.vendors.altcraft.sandbox.AltcraftSandbox"),
    }
    # Called with the KeyRotation by credentials_rotate_key (dashboard/tenancy/services.py).
    key_rotation_hooks = (
        "campaigns.altcraft_launches.storage.rotate_stored_files",
        "campaigns.altcraft_launches.recurring.rotate_stored_lists",
    )
    # Called with (tenant, stdout) by setup_demo, in this order.
    demo_data = (
        "campaigns.event_generators.demo.register_demo_data",
        "campaigns.altcraft_launches.demo.register_demo_triggers",
    )
    # Called with (connection_id, operation, now) before the engine sends a connection's queued
    # runs: an event generator's own send window holds its runs (dashboard/send_windows).
    send_holds = ("campaigns.event_generators.send_window.hold_generator_runs",)
    # Kinds of approval request a mailed one-time link can decide (dashboard/approval_links).
    approval_link_subjects = {
        "altcraft_launch": "campaigns.altcraft_launches.approval_links.LAUNCH_SUBJECT"
    }
    # run_settle --<name> VALUE: the run that VALUE names.
    run_lookups = {"chunk": "campaigns.altcraft_launches.selectors.run_of_chunk"}
    # What recurring schedules (dashboard.recurring) can fire.
    recurring_targets = {
        "event_generator": "campaigns.event_generators.recurring.EventGeneratorTarget",
        "altcraft_launch": "campaigns.altcraft_launches.recurring.AltcraftLaunchTarget",
    }
