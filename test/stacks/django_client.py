"""Django (3.2 in Debian 12) through its WSGI handler, as gunicorn's threads call it (request_started /
request_finished run close_old_connections), one persistent connection per worker thread.  Guide: CONN_MAX_AGE below the rule (here 1 s; CONN_HEALTH_CHECKS = True on 4.1+);
without it: CONN_MAX_AGE = None."""
import os
import wsgiref.util

import django
from django.conf import settings

conninfo = dict(kv.split("=", 1) for kv in os.environ["STACK_CONNINFO"].split())
max_age = None if os.environ.get("GUIDE", "1") != "1" else 1
settings.configure(
    SECRET_KEY="pg_poolguard-stacks-test", DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, INSTALLED_APPS=[], MIDDLEWARE=[],
    DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": conninfo["dbname"], "USER": conninfo["user"],
        "HOST": conninfo["host"], "PORT": conninfo["port"], "CONN_MAX_AGE": max_age,
        "OPTIONS": {"application_name": conninfo["application_name"]},
        **({"CONN_HEALTH_CHECKS": True} if django.VERSION >= (4, 1) and max_age is not None else {}),
    }})
django.setup()

from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.urls import path  # noqa: E402


def view(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse("ok")


urlpatterns = [path("", view)]

import harness  # noqa: E402

application = WSGIHandler()


def request():
    """One request as a WSGI server thread (gunicorn's gthread worker) runs it: request_started
    and request_finished (on close) run close_old_connections around the view."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    body = application(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        b"".join(body)
    finally:
        body.close()
    if not status[0].startswith("200"):
        raise RuntimeError("HTTP " + status[0])


harness.serve(request)
