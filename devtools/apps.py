from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    name = "devtools"
    verbose_name = "Developer tools"

    def ready(self) -> None:
        from devtools.demo import gates as gates_demo
        from devtools.demo import owners as owners_demo
        from meshline import extensions as ext

        ext.demo_configure.register("owners.roles_rotas", owners_demo.configure, order=10)
        # After owners' roles exist: the gates' demo tickets need an owner map.
        ext.demo_configure.register("gates.gates", gates_demo.configure, order=20)
        ext.demo_after_events.register("gates.expire_timers", gates_demo.after_events)
