import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")

from meshline import telemetry

# Before the handler loads its middleware: the Django instrumentation adds its own first.
telemetry.setup("web")
application = get_wsgi_application()
