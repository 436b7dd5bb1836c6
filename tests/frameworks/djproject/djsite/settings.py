"""A Django project using pgqueue: its database is the one in $DJANGO_DATABASE_URL (a libpq URL)."""

import os

import psycopg

_db = psycopg.conninfo.conninfo_to_dict(os.environ["DJANGO_DATABASE_URL"])

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
ROOT_URLCONF = "djsite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "pgqueue.contrib.django", "shop"]
MIDDLEWARE: list[str] = []
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db["dbname"],
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING_CONFIG = None  # leave the test process's logging alone
TEST_RUNNER = "pgqueue.contrib.django.test.DiscoverRunner"  # closes pgqueue's connections to the test database
